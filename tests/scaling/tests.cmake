# The scaling simulator's tests (tools/scaling). Not in the folder list of
# tests/CMakeLists.txt: the executable is made here, where the library is known.
if(TARGET vitscale_scaling_sim)
  file(GLOB VITSCALE_SCALING_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
  add_executable(test_scaling ${VITSCALE_SCALING_TEST_SOURCES})
  target_link_libraries(test_scaling PRIVATE vitscale_test_main vitscale_scaling_sim)
  catch_discover_tests(test_scaling TEST_PREFIX "scaling:" PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
                       DISCOVERY_TIMEOUT 60)
endif()

# The study driver's metrics reading and skip rules (Python, no binaries needed).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME scaling:driver COMMAND ${Python3_EXECUTABLE} -m unittest -v test_study_driver
           WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
  set_tests_properties(scaling:driver PROPERTIES TIMEOUT 60 ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
endif()

# The network benches under mpirun: one curve per collective (all-reduce,
# reduce-scatter, all-gather), idle and while the core computes.
if(TARGET vit_allreduce_bench AND TARGET vit_contended_bench AND MPIEXEC_EXECUTABLE AND Python3_Interpreter_FOUND)
  set(bench_mpirun_flags ${MPIEXEC_PREFLAGS})
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE bench_mpiexec_version ERROR_QUIET)
  if(bench_mpiexec_version MATCHES "Open MPI|OpenRTE")
    list(APPEND bench_mpirun_flags --allow-run-as-root --oversubscribe)
  endif()
  add_test(NAME scaling:collective_benches
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/collective_benches_test.py
                   $<TARGET_FILE:vit_allreduce_bench> $<TARGET_FILE:vit_contended_bench> ${MPIEXEC_EXECUTABLE}
                   ${bench_mpirun_flags})
  set_tests_properties(scaling:collective_benches PROPERTIES TIMEOUT 300 PROCESSORS 2
                       ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
endif()
