"""CMAKE_ARGS for building llama-cpp-python (the llama.cpp row of `make bench`): the vector
instructions this CPU has, named one by one instead of -march=native, so that AMX is left
out. llama.cpp's AMX kernels fault (ldtilecfg) where the kernel has not granted the process
AMX state, as on this project's virtual machines."""

flags = set()
for line in open("/proc/cpuinfo"):
    if line.startswith("flags"):
        flags = set(line.split(":", 1)[1].split())
        break
options = {"AVX": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "BMI2": "bmi2", "AVX_VNNI": "avx_vnni",
           "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16"}
args = ["-DGGML_NATIVE=OFF"] + [f"-DGGML_{k}={'ON' if v in flags else 'OFF'}" for k, v in options.items()]
print(" ".join(args))
