// edgekit's one runtime policy (edge/board/runner.py ncnn_options), and ncnn's CPU answers.
// fp32 turns ncnn's fp16 paths off; fp16 and int8 turn them on (for an INT8 build they cover its
// float layers); INT8 inference stays on for every precision (ncnn crashes loading a quantized model
// with it off); light mode on; no Vulkan; no bf16.
#include "cpu.h"

#include "internal.h"

namespace edgekit {

std::vector<std::pair<std::string, int>> policy_options(const std::string& precision, int threads) {
    if (precision != "fp32" && precision != "fp16" && precision != "int8")
        throw Error("usage", "unknown precision '" + precision + "' (expected one of fp32, fp16, int8)");
    const int fp16 = precision != "fp32";
    return {
        {"num_threads", threads},
        {"lightmode", 1},
        {"use_vulkan_compute", 0},
        {"use_fp16_packed", fp16},
        {"use_fp16_storage", fp16},
        {"use_fp16_arithmetic", fp16},
        {"use_bf16_storage", 0},
        {"use_int8_inference", 1},
    };
}

void apply_policy(ncnn::Option& opt, const std::string& precision, int threads) {
    for (const auto& kv : policy_options(precision, threads)) {
        const std::string& k = kv.first;
        const int v = kv.second;
        if (k == "num_threads") opt.num_threads = v;
        else if (k == "lightmode") opt.lightmode = v != 0;
        else if (k == "use_vulkan_compute") opt.use_vulkan_compute = v != 0;
        else if (k == "use_fp16_packed") opt.use_fp16_packed = v != 0;
        else if (k == "use_fp16_storage") opt.use_fp16_storage = v != 0;
        else if (k == "use_fp16_arithmetic") opt.use_fp16_arithmetic = v != 0;
        else if (k == "use_bf16_storage") opt.use_bf16_storage = v != 0;
        else if (k == "use_int8_inference") opt.use_int8_inference = v != 0;
        else throw Error("usage", "policy names an option the core cannot set: " + k);
    }
}

void apply_vulkan(ncnn::Option& opt, bool on) {
    if (!on) {
        opt.use_vulkan_compute = false;
        return;
    }
#if NCNN_VULKAN
    if (ncnn::get_gpu_count() <= 0)
        throw Error("usage", "no Vulkan GPU on this device: run on the CPU (use_vulkan off)");
    opt.use_vulkan_compute = true;
#else
    throw Error("usage", "this ncnn build has no Vulkan: run on the CPU (use_vulkan off)");
#endif
}

std::vector<std::pair<std::string, bool>> cpu_features() {
    return {
        {"neon", ncnn::cpu_support_arm_neon() != 0},
        {"fp16", ncnn::cpu_support_arm_asimdhp() != 0},
        {"dotprod", ncnn::cpu_support_arm_asimddp() != 0},
        {"fhm", ncnn::cpu_support_arm_asimdfhm() != 0},
        {"bf16", ncnn::cpu_support_arm_bf16() != 0},
        {"i8mm", ncnn::cpu_support_arm_i8mm() != 0},
        {"sve", ncnn::cpu_support_arm_sve() != 0},
        {"avx", ncnn::cpu_support_x86_avx() != 0},
        {"fma", ncnn::cpu_support_x86_fma() != 0},
        {"avx2", ncnn::cpu_support_x86_avx2() != 0},
        {"avx512", ncnn::cpu_support_x86_avx512() != 0},
        {"avx512_vnni", ncnn::cpu_support_x86_avx512_vnni() != 0},
    };
}

int cpu_count() { return ncnn::get_cpu_count(); }
int little_cpu_count() { return ncnn::get_little_cpu_count(); }
int big_cpu_count() { return ncnn::get_big_cpu_count(); }

}  // namespace edgekit
