# tools/gpu_check.sh: the dependency probe it builds against .deps, and its own
# tests (the dry run CI runs, the deadline logic, the budgets). Included from tests/.
# Not in `all`: only the check builds it (CI has 2 cores).
add_executable(vitscale_deps_probe EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/deps_probe.cpp)
target_include_directories(vitscale_deps_probe PRIVATE ${CBLAS_INCLUDE_DIR})
target_link_libraries(vitscale_deps_probe PRIVATE Catch2::Catch2 CLI11::CLI11 nlohmann_json::nlohmann_json
                      ${BLAS_LIBRARIES} ZLIB::ZLIB)

set(gpu_check_test ${CMAKE_CURRENT_LIST_DIR}/gpu_check_test.sh)
set(gpu_check_work ${CMAKE_BINARY_DIR}/gpu_check_test)
add_test(NAME gpu_check:budgets_fit_deadline COMMAND bash ${gpu_check_test} budgets)
# Configure against .deps with the system's copies hidden, build and run the
# probe, every GPU stage recorded "no GPU". With no .deps in the clone it
# fetches them (apt-get download, ~14 MB) into the build tree, and passes,
# saying so in its report, when that is impossible (offline).
add_test(NAME gpu_check:dry_run COMMAND bash ${gpu_check_test} dry_run ${gpu_check_work}/dry_run)
set_tests_properties(gpu_check:dry_run PROPERTIES TIMEOUT 420 RUN_SERIAL TRUE)
add_test(NAME gpu_check:short_deadline_skips_and_reports
         COMMAND bash ${gpu_check_test} short_deadline ${gpu_check_work}/short_deadline)
add_test(NAME gpu_check:killed_run_leaves_report COMMAND bash ${gpu_check_test} killed ${gpu_check_work}/killed)
set_tests_properties(gpu_check:budgets_fit_deadline gpu_check:short_deadline_skips_and_reports
                     gpu_check:killed_run_leaves_report PROPERTIES TIMEOUT 120)

# tools/plot_curves.py (matplotlib): run with the system interpreter, which has
# Debian's python3-matplotlib; skipped (77) where matplotlib is missing.
find_program(VITSCALE_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT VITSCALE_SYSTEM_PYTHON)
  find_program(VITSCALE_SYSTEM_PYTHON python3)
endif()
if(VITSCALE_SYSTEM_PYTHON)
  add_test(NAME tools:plot_curves COMMAND ${VITSCALE_SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_plot_curves.py)
  set_tests_properties(tools:plot_curves PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77
                       ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
  # tools/recipe_sweep.py against a stand-in vit_train (standard library only).
  add_test(NAME tools:recipe_sweep COMMAND ${VITSCALE_SYSTEM_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_recipe_sweep.py)
  set_tests_properties(tools:recipe_sweep PROPERTIES TIMEOUT 120 ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
endif()
