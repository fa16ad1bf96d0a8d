# The single-process parallel tests (tests/parallel/*.cpp, test_parallel) also
# cover vit_train's step engine.
if(TARGET test_parallel AND TARGET vitscale_parallel_engine)
  target_link_libraries(test_parallel PRIVATE vitscale_parallel_engine)
endif()

# Multi-process tests: run under mpirun by CTest (included from tests/).
# test_parallel_mpi holds the collective Catch2 cases (communicators, training
# equivalence, ZeRO-1); parallel_fault_check the runs that must end the job.
if(NOT (TARGET vitscale_parallel AND VITSCALE_HAVE_MPI AND MPIEXEC_EXECUTABLE))
  return()
endif()

set(mpi_dir ${CMAKE_CURRENT_SOURCE_DIR}/parallel/mpi)
file(GLOB mpi_case_sources CONFIGURE_DEPENDS ${mpi_dir}/*_test.cpp)
add_executable(test_parallel_mpi ${mpi_dir}/mpi_main.cpp ${mpi_case_sources})
target_link_libraries(test_parallel_mpi PRIVATE vitscale_parallel Catch2::Catch2)
add_executable(parallel_fault_check ${mpi_dir}/fault_main.cpp)
target_link_libraries(parallel_fault_check PRIVATE vitscale_parallel)

# Open MPI refuses root and more ranks than cores unless told; CI runs as
# root on 2 cores, so 3 ranks oversubscribe.
set(mpirun_flags ${MPIEXEC_PREFLAGS})
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE mpiexec_version ERROR_QUIET)
if(mpiexec_version MATCHES "Open MPI|OpenRTE")
  list(APPEND mpirun_flags --allow-run-as-root --oversubscribe)
endif()
# One OpenMP thread per rank: ranks share the cores.
set(mpi_env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1)

foreach(np 2 3)
  add_test(NAME parallel_mpi:np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${mpirun_flags}
                   $<TARGET_FILE:test_parallel_mpi> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(parallel_mpi:np${np} PROPERTIES TIMEOUT 300 PROCESSORS ${np} ENVIRONMENT "${mpi_env}")
endforeach()

# Each rank's memory plan against its measured peak RSS, one process per row
# (hidden cases: tests/parallel/mpi/mpi_memory_test.cpp).
foreach(row memory0 memory1 memory2 memory3 memory3ckpt)
  add_test(NAME parallel_mpi:memory_plan_is_measured_peak_${row}_np2
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${mpirun_flags}
                   $<TARGET_FILE:test_parallel_mpi> "[.${row}]" ${MPIEXEC_POSTFLAGS})
  set_tests_properties(parallel_mpi:memory_plan_is_measured_peak_${row}_np2 PROPERTIES TIMEOUT 300 PROCESSORS 2
    ENVIRONMENT "${mpi_env}")
endforeach()

# A collective that never completes: the watchdog (2 s) aborts every rank,
# whether the collective sits in the comm thread, is polled by it, or in MPI_Wait.
foreach(progress thread polling nonblocking)
  add_test(NAME parallel_mpi:timeout_aborts_${progress}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 3 ${mpirun_flags}
                   $<TARGET_FILE:parallel_fault_check> hang 2 ${progress})
  set_tests_properties(parallel_mpi:timeout_aborts_${progress} PROPERTIES TIMEOUT 60 PROCESSORS 2
    ENVIRONMENT "${mpi_env}"
    PASS_REGULAR_EXPRESSION "rank [02]: all_reduce \\(4096 bytes\\) did not complete within 2 s; aborting")
endforeach()
# A rank that dies: the job ends (non-zero) instead of hanging.
add_test(NAME parallel_mpi:dead_rank_ends_job
         COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${mpirun_flags}
                 $<TARGET_FILE:parallel_fault_check> died 5)
set_tests_properties(parallel_mpi:dead_rank_ends_job PROPERTIES TIMEOUT 60 PROCESSORS 2 WILL_FAIL TRUE
  ENVIRONMENT "${mpi_env}")
# Different models on different ranks: refused at start-up, on every rank.
add_test(NAME parallel_mpi:config_mismatch_refused
         COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${mpirun_flags}
                 $<TARGET_FILE:parallel_fault_check> mismatch)
set_tests_properties(parallel_mpi:config_mismatch_refused PROPERTIES TIMEOUT 60 PROCESSORS 2
  ENVIRONMENT "${mpi_env}"
  PASS_REGULAR_EXPRESSION "rank [01]: model and data-parallel configuration differs across ranks: rank 1 disagrees with rank 0")

# vit_train end to end: 2 CPU ranks, ZeRO-1, accumulation, synthetic data.
if(TARGET vit_train)
  set(vit_train_tiny --dataset synthetic --synthetic-train 256 --synthetic-test 64 --synthetic-image-size 16
      --image-size 16 --patch-size 4 --dim 32 --depth 2 --heads 2 --mlp-dim 64 --max-steps 4 --steps-per-print 2)
  add_test(NAME parallel_mpi:vit_train_np2_zero1
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${mpirun_flags} $<TARGET_FILE:vit_train>
                   ${vit_train_tiny} --micro-batch-size 8 --gradient-accumulation-steps 2 --zero-stage 1
                   --reduce-bucket-size 4096 --wall-clock-breakdown)
  set_tests_properties(parallel_mpi:vit_train_np2_zero1 PROPERTIES TIMEOUT 120 PROCESSORS 2
    ENVIRONMENT "${mpi_env}" PASS_REGULAR_EXPRESSION "data parallel: mpi.*rank 0 of 2.*ZeRO-1.*final: test_acc")
  # One rank fails (start-up: metrics path, bad data; mid-training: an injected
  # fault): the job ends within 30 s, non-zero, that rank's error on stderr.
  string(JOIN " " mpirun_flag_text ${mpirun_flags})
  foreach(np 2 3)
    foreach(scenario metrics bad_data fault_0 fault_last)
      add_test(NAME parallel_mpi:rank_failure_ends_job_${scenario}_np${np}
               COMMAND bash ${mpi_dir}/rank_failure_check.sh ${MPIEXEC_EXECUTABLE} "${mpirun_flag_text}"
                       $<TARGET_FILE:vit_train> ${np} ${scenario})
      set_tests_properties(parallel_mpi:rank_failure_ends_job_${scenario}_np${np} PROPERTIES TIMEOUT 120
        PROCESSORS 2 SKIP_RETURN_CODE 77 ENVIRONMENT "${mpi_env}")
    endforeach()
  endforeach()
  # A ZeRO-1 checkpoint of 2 ranks resumes in one process with another split of
  # the same global batch (micro 8 x accumulation 3), at stage 0.
  add_test(NAME parallel_mpi:resume_at_another_world_size_and_stage
           COMMAND bash ${mpi_dir}/resume_other_world_check.sh ${MPIEXEC_EXECUTABLE} "${mpirun_flag_text}"
                   $<TARGET_FILE:vit_train>)
  set_tests_properties(parallel_mpi:resume_at_another_world_size_and_stage PROPERTIES TIMEOUT 120 PROCESSORS 2
    ENVIRONMENT "${mpi_env}")
  # Across the ZeRO ladder (NP STAGE MICRO ACCUM, saved then resumed): stage 3 on 2
  # ranks -> stage 2 on 3; stage 0 in one process -> stage 3 on 3 ranks with
  # accumulation 2 (in the full gradient buffer); stage 2 on 3 ranks -> stage 1
  # on 2 with accumulation 3; and at the same stage, world size and split, bit
  # for bit (stage 3 with accumulation 3, stage 2 on 2 ranks).
  foreach(combo "2 3 12 1 3 2 8 1" "1 0 24 1 3 3 4 2" "3 2 8 1 2 1 4 3" "2 3 4 3 2 3 4 3" "2 2 12 1 2 2 12 1")
    string(REPLACE " " "_" combo_name "${combo}")
    separate_arguments(combo_args UNIX_COMMAND "${combo}")
    add_test(NAME parallel_mpi:resume_across_zero_stages_${combo_name}
             COMMAND bash ${mpi_dir}/resume_other_world_check.sh ${MPIEXEC_EXECUTABLE} "${mpirun_flag_text}"
                     $<TARGET_FILE:vit_train> ${combo_args})
    set_tests_properties(parallel_mpi:resume_across_zero_stages_${combo_name} PROPERTIES TIMEOUT 120 PROCESSORS 2
      ENVIRONMENT "${mpi_env}")
  endforeach()
  # ZeRO-3 on 2 ranks exports (gathered on every rank, written by rank 0) the
  # weights a stage-0 run of the same steps exports, byte for byte.
  set(export_dir ${CMAKE_CURRENT_BINARY_DIR}/zero3_export)
  string(JOIN " " vit_train_tiny_text ${vit_train_tiny})
  add_test(NAME parallel_mpi:vit_train_np2_zero3_exports_stage0_weights
           COMMAND bash -c "rm -rf '${export_dir}' && for z in 0 3; do ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${mpirun_flag_text} $<TARGET_FILE:vit_train> ${vit_train_tiny_text} --micro-batch-size 8 --zero-stage $z --stage3-param-persistence-threshold 0 --export-model '${export_dir}/z'$z >/dev/null || exit 1; done && cmp '${export_dir}/z0/model.safetensors' '${export_dir}/z3/model.safetensors'")
  set_tests_properties(parallel_mpi:vit_train_np2_zero3_exports_stage0_weights PROPERTIES TIMEOUT 120 PROCESSORS 2
    ENVIRONMENT "${mpi_env}")
  # The weight average (--ema-decay) on 2 ranks at ZeRO stages 0, 1 and 2 (the
  # overlapped all-gather of stage 1 included) exports the same average, byte
  # for byte, and not the live weights (the stage-0 run without it).
  set(ema_dir ${CMAKE_CURRENT_BINARY_DIR}/ema_export)
  add_test(NAME parallel_mpi:vit_train_np2_ema_same_average_at_zero_0_1_2
           COMMAND bash -c "rm -rf '${ema_dir}' && for z in 0 1 2; do ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${mpirun_flag_text} $<TARGET_FILE:vit_train> ${vit_train_tiny_text} --micro-batch-size 8 --reduce-bucket-size 4096 --zero-stage $z --ema-decay 0.9 --export-model '${ema_dir}/z'$z >/dev/null || exit 1; done && ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${mpirun_flag_text} $<TARGET_FILE:vit_train> ${vit_train_tiny_text} --micro-batch-size 8 --export-model '${ema_dir}/live' >/dev/null && cmp '${ema_dir}/z0/model.safetensors' '${ema_dir}/z1/model.safetensors' && cmp '${ema_dir}/z0/model.safetensors' '${ema_dir}/z2/model.safetensors' && ! cmp -s '${ema_dir}/z0/model.safetensors' '${ema_dir}/live/model.safetensors'")
  set_tests_properties(parallel_mpi:vit_train_np2_ema_same_average_at_zero_0_1_2 PROPERTIES TIMEOUT 120 PROCESSORS 2
    ENVIRONMENT "${mpi_env}")
  # A memory plan beyond what the machine has (here: told 1 MiB): refused on
  # every rank before step 1, with the plan's rows.
  add_test(NAME parallel_mpi:vit_train_plan_beyond_memory_refused
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 ${mpirun_flags} $<TARGET_FILE:vit_train>
                   ${vit_train_tiny} --micro-batch-size 8 --zero-stage 3)
  set_tests_properties(parallel_mpi:vit_train_plan_beyond_memory_refused PROPERTIES TIMEOUT 120 PROCESSORS 2
    ENVIRONMENT "${mpi_env};VITSCALE_MEMORY_AVAILABLE_MIB=0.1"
    PASS_REGULAR_EXPRESSION "rank [01]: the memory plan does not fit: [0-9.]+ MiB \\(parameters [0-9.]+ MiB, gradients [0-9.]+ MiB, optimizer [0-9.]+ MiB, activations [0-9.]+ MiB\\), of which [0-9.]+ MiB is still to be touched, but 0.1 MiB is available"
    FAIL_REGULAR_EXPRESSION "step +1/")
  # Ranks started with different batch settings (MPMD launch): refused at start-up.
  add_test(NAME parallel_mpi:vit_train_batch_mismatch_refused
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 1 ${mpirun_flags} $<TARGET_FILE:vit_train>
                   ${vit_train_tiny} --micro-batch-size 8 :
                   ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:vit_train> ${vit_train_tiny} --micro-batch-size 4)
  set_tests_properties(parallel_mpi:vit_train_batch_mismatch_refused PROPERTIES TIMEOUT 120 PROCESSORS 2
    ENVIRONMENT "${mpi_env}"
    PASS_REGULAR_EXPRESSION "rank [01]: training configuration differs across ranks: rank 1 disagrees with rank 0 \\([^)]*train_micro_batch_size_per_gpu: 8 on rank 0, 4 on rank 1")
endif()
