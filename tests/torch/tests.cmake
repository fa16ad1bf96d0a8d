# The LibTorch recipe baseline (tools/torch_ref's vit_torch_train) against
# vit_train itself: both programs run as subprocesses.
if(TARGET test_torch AND TARGET vit_torch_train AND TARGET vit_train)
  target_link_libraries(test_torch PRIVATE vitscale_train_lib)
  target_compile_definitions(test_torch PRIVATE VIT_TRAIN_EXE="$<TARGET_FILE:vit_train>"
                                                VIT_TORCH_TRAIN_EXE="$<TARGET_FILE:vit_torch_train>")
  add_dependencies(test_torch vit_train vit_torch_train)
endif()
