# vit_bench --device cpu on tiny shapes and few runs (seconds): the table holds every op row
# (and, with LibTorch, LibTorch's time and the speed-up beside each op LibTorch has).
if(TARGET vit_bench)
  add_test(NAME vit_bench:cpu_smoke
           COMMAND ${CMAKE_COMMAND} -DBENCH=$<TARGET_FILE:vit_bench> -DWITH_TORCH=${VITSCALE_HAVE_TORCH} -P ${CMAKE_CURRENT_LIST_DIR}/cpu_smoke_test.cmake)
  set_tests_properties(vit_bench:cpu_smoke PROPERTIES TIMEOUT 120)
endif()
