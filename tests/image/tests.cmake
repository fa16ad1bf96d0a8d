# vit_predict's test drives the program: it needs its path.
if(TARGET test_image AND TARGET vit_predict)
  target_compile_definitions(test_image PRIVATE VIT_PREDICT_EXE="$<TARGET_FILE:vit_predict>")
  add_dependencies(test_image vit_predict)
endif()

# The exported model in plain PyTorch (tools/vit_torch.py) against vit_predict;
# the system interpreter has Debian's python3-torch (skipped, 77, without it).
find_program(VITSCALE_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(TARGET vit_predict AND VITSCALE_SYSTEM_PYTHON)
  add_test(NAME image:exported_model_in_plain_pytorch
           COMMAND ${VITSCALE_SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_vit_torch.py
                   $<TARGET_FILE:vit_train> $<TARGET_FILE:vit_predict>)
  set_tests_properties(image:exported_model_in_plain_pytorch PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                       ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
endif()
