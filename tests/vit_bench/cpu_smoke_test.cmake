# vit_bench --device cpu on tiny shapes: exits 0 and prints a row for every
# CPU-backend op, each with a fraction of its ceiling; with LibTorch
# (-DWITH_TORCH=ON), LibTorch's time and the speed-up beside every op but the
# bare gradient norm. Run by CTest (-DBENCH=<exe> -DWITH_TORCH=ON|OFF).
execute_process(
  COMMAND ${BENCH} --device cpu --threads 2 --batch 4 --dim 32 --heads 2 --mlp 64 --tokens 17 --warmup 1 --reps 3
          --ceiling-gemm 256 --ceiling-copy-mib 8
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "vit_bench --device cpu exited ${rc}:\n${out}\n${err}")
endif()
foreach(op "linear qkv fwd" "linear qkv bwd" "linear proj fwd" "linear\\+gelu fc1 fwd" "linear fc1 bwd" "linear fc2 fwd"
           "linear fc2 bwd" "gelu bwd" "mlp bwd" "attention fwd" "attention bwd" "layernorm fwd" "add_layernorm fwd"
           "layernorm bwd" "add" "cross_entropy fwd\\+bwd" "grad norm² \\+ adamw \\(clip\\)")
  if(NOT out MATCHES "\\| ${op} \\|[^\n]*\\| [0-9]+%")
    message(FATAL_ERROR "vit_bench --device cpu: no row for '${op}' with a fraction of its ceiling:\n${out}")
  endif()
  # | ... | % of ceiling | LibTorch µs | speed-up | note |
  if(WITH_TORCH AND NOT out MATCHES "\\| ${op} \\|[^\n]*\\| [0-9]+% \\| [0-9]+\\.[0-9] \\| [0-9]+\\.[0-9][0-9]× \\|")
    message(FATAL_ERROR "vit_bench --device cpu: no LibTorch time and speed-up on the row '${op}':\n${out}")
  endif()
endforeach()
# Rows without a LibTorch figure: the bare gradient norm and the GEMM shapes through OpenBLAS alone.
foreach(op "grad norm²" "sgemm qkv fwd" "sgemm qkv bwd" "sgemm proj fwd" "sgemm proj bwd" "sgemm fc1 fwd" "sgemm fc1 bwd"
           "sgemm fc2 fwd" "sgemm fc2 bwd")
  if(NOT out MATCHES "\\| ${op} \\|[^\n]*\\| [0-9]+%")
    message(FATAL_ERROR "vit_bench --device cpu: no row for '${op}' with a fraction of its ceiling:\n${out}")
  endif()
endforeach()
if(WITH_TORCH AND NOT out MATCHES "beside LibTorch [0-9.]+'s CPU ops")
  message(FATAL_ERROR "vit_bench --device cpu: LibTorch is built in but the header does not name it:\n${out}")
endif()
if(NOT out MATCHES "ceilings: copy [^\n]*1 MiB [0-9.]+ GB/s;[^\n]*8 MiB [0-9.]+ GB/s;[^\n]*SGEMM [0-9.]+ GFLOP/s")
  message(FATAL_ERROR "vit_bench --device cpu: no measured ceilings line:\n${out}")
endif()
message(STATUS "vit_bench cpu smoke: every op row present (LibTorch beside them: ${WITH_TORCH})")
