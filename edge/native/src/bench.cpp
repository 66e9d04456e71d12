// bench(): the loop of edge/board/runner.py bench (and of ncnn's benchncnn): per thread count, a net
// loaded with the policy's options and pool allocators (load timed), an input of 0.01s, `warmup`
// untimed then `loops` timed iterations of: new extractor, input, extract every output.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cpu.h"

#include "internal.h"

namespace edgekit {
namespace {

/// Zero weights of the right size (benchncnn's way when no .bin is given).
class ZeroReader : public ncnn::DataReader {
public:
    std::size_t read(void* buf, std::size_t size) const override {
        std::memset(buf, 0, size);
        return size;
    }
};

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("model", "ncnn could not load " + path + " (not found or unreadable)");
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace

double peak_rss_mb() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
    return -1;
}

bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    if (!out) return false;
    out << "5";
    out.flush();
    return static_cast<bool>(out);
}

std::vector<BenchRun> bench(const BenchOptions& o) {
    if (o.c <= 0 || o.h <= 0 || o.w <= 0) throw Error("usage", "--shape needs three positive integers C,H,W");
    if (o.loops < 1 || o.warmup < 0) throw Error("usage", "--loops must be >= 1 and --warmup >= 0");
    if (o.powersave < 0 || o.powersave > 2) throw Error("usage", "--powersave must be 0, 1 or 2");
    policy_options(o.precision, 1);  // refuses an unknown precision
    {
        ncnn::Option check;
        apply_vulkan(check, o.use_vulkan);  // refuses Vulkan where there is none, before any work
    }
    const std::string param_text = slurp(o.param);
    check_param_layers(param_text, o.param);
    if (!o.bin.empty()) {
        std::ifstream probe(o.bin, std::ios::binary);
        if (!probe) throw Error("model", "ncnn could not load weights " + o.bin + " (not found or unreadable)");
    }
    ncnn::set_cpu_powersave(o.powersave);
    ncnn::set_omp_dynamic(0);
    std::vector<BenchRun> runs;
    using clock = std::chrono::steady_clock;
    for (int threads : o.threads) {
        if (threads < 1) throw Error("usage", "--threads values must be >= 1");
        ncnn::set_omp_num_threads(threads);
        ncnn::UnlockedPoolAllocator blob_allocator;
        ncnn::PoolAllocator workspace_allocator;
        const bool reset_ok = reset_peak_rss();
        BenchRun run;
        run.threads = threads;
        {
            ncnn::Net net;
            apply_policy(net.opt, o.precision, threads);
            apply_vulkan(net.opt, o.use_vulkan);
            net.opt.blob_allocator = &blob_allocator;
            net.opt.workspace_allocator = &workspace_allocator;
            auto t0 = clock::now();
            if (net.load_param(o.param.c_str()) != 0) throw Error("model", "ncnn could not load " + o.param);
            int ret;
            if (o.bin.empty()) {
                ZeroReader zeros;
                ret = net.load_model(zeros);
            } else {
                ret = net.load_model(o.bin.c_str());
            }
            run.load_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
            if (ret != 0)
                throw Error("model", "ncnn could not load weights " + (o.bin.empty() ? std::string("(generated)") : o.bin));
            ncnn::Mat mat(o.w, o.h, o.c);
            mat.fill(0.01f);
            run.outputs = o.outputs;
            if (run.outputs.empty())
                for (const char* name : net.output_names()) run.outputs.emplace_back(name);
            std::set<std::string> names;
            for (const ncnn::Blob& b : net.blobs()) names.insert(b.name);
            std::vector<std::string> wanted{o.input};
            wanted.insert(wanted.end(), run.outputs.begin(), run.outputs.end());
            for (const std::string& n : wanted)
                if (!names.count(n)) throw Error("model", "the model has no blob named '" + n + "'");
            run.latencies_ms.reserve(o.loops);
            for (int i = 0; i < o.warmup + o.loops; i++) {
                auto s = clock::now();
                bool ok;
                {
                    ncnn::Extractor ex = net.create_extractor();
                    ok = ex.input(o.input.c_str(), mat) == 0;
                    for (const std::string& name : run.outputs) {
                        ncnn::Mat out;
                        ok = ex.extract(name.c_str(), out) == 0 && ok;
                    }
                }
                double elapsed = std::chrono::duration<double, std::milli>(clock::now() - s).count();
                if (!ok)
                    throw Error("model", "inference failed: no input blob '" + o.input + "' or an output not computed");
                if (i >= o.warmup) run.latencies_ms.push_back(elapsed);
            }
            run.peak_rss_mb = peak_rss_mb();
            run.peak_rss_scope = reset_ok ? "this thread count" : "whole process";
            net.clear();
        }
        blob_allocator.clear();
        workspace_allocator.clear();
        runs.push_back(std::move(run));
    }
    return runs;
}

std::string bench_json(const BenchOptions& options, const std::vector<BenchRun>& runs,
                       const std::vector<std::pair<std::string, std::string>>& extra) {
    using json = nlohmann::ordered_json;
    json out;
    out["precision"] = options.precision;
    out["powersave"] = options.powersave;
    out["runs"] = json::array();
    for (const BenchRun& r : runs) {
        json run;
        run["threads"] = r.threads;
        run["load_ms"] = r.load_ms;
        run["latencies_ms"] = r.latencies_ms;
        run["peak_rss_mb"] = r.peak_rss_mb < 0 ? json(nullptr) : json(r.peak_rss_mb);
        run["peak_rss_scope"] = r.peak_rss_scope;
        run["outputs"] = r.outputs;
        out["runs"].push_back(std::move(run));
    }
    if (options.use_vulkan) out["vulkan"] = true;
    for (const auto& kv : extra) out[kv.first] = kv.second;
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace edgekit
