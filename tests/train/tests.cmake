# The train tests also drive the vit_train program as a subprocess (bad input,
# SIGTERM, SIGKILL during checkpoint writes): they need its path.
if(TARGET test_train AND TARGET vit_train)
  target_compile_definitions(test_train PRIVATE VIT_TRAIN_EXE="$<TARGET_FILE:vit_train>")
  add_dependencies(test_train vit_train)
endif()
