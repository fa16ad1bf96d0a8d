# vit_bench --device cpu on tiny shapes: exits 0 and prints a row for every
# CPU-backend op, each with a fraction of its ceiling. Run by CTest (-DBENCH=<exe>).
execute_process(
  COMMAND ${BENCH} --device cpu --threads 2 --batch 4 --dim 32 --heads 2 --mlp 64 --tokens 17 --warmup 1 --reps 3
          --ceiling-gemm 256 --ceiling-copy-mib 8
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "vit_bench --device cpu exited ${rc}:\n${out}\n${err}")
endif()
foreach(op "linear qkv fwd" "linear qkv bwd" "linear proj fwd" "linear\\+gelu fc1 fwd" "linear fc1 bwd" "linear fc2 fwd"
           "linear fc2 bwd" "gelu bwd" "attention fwd" "attention bwd" "layernorm fwd" "add_layernorm fwd"
           "layernorm bwd" "cross_entropy fwd\\+bwd" "grad norm" "adamw")
  if(NOT out MATCHES "\\| ${op}[^\n]*\\| [0-9]+%")
    message(FATAL_ERROR "vit_bench --device cpu: no row for '${op}' with a fraction of its ceiling:\n${out}")
  endif()
endforeach()
if(NOT out MATCHES "ceilings: copy [^\n]*1 MiB [0-9.]+ GB/s;[^\n]*8 MiB [0-9.]+ GB/s;[^\n]*SGEMM [0-9.]+ GFLOP/s")
  message(FATAL_ERROR "vit_bench --device cpu: no measured ceilings line:\n${out}")
endif()
message(STATUS "vit_bench cpu smoke: every op row present")
