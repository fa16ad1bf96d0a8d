# The train tests also drive the vit_train program as a subprocess (bad input,
# SIGTERM, SIGKILL during checkpoint writes), and vit_eval: they need their paths.
if(TARGET test_train AND TARGET vit_train)
  target_compile_definitions(test_train PRIVATE VIT_TRAIN_EXE="$<TARGET_FILE:vit_train>"
                                                VIT_EVAL_EXE="$<TARGET_FILE:vit_eval>")
  add_dependencies(test_train vit_train vit_eval)
endif()
