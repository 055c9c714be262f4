// Four threads generate on one medgen_model at once; every result must equal the
// single-threaded result for the same prompt and options (greedy and seeded sampling).
// Usage: threads_test MODEL_PATH
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "medgen.h"

namespace {

struct Job {
    std::string prompt;
    bool sample;
};

// The generated token ids as text, or "error: ..." (the message of this thread's failure).
std::string run(medgen_model *m, const Job &job) {
    medgen_generation_params g = medgen_generation_params_default();
    g.max_new_tokens = 16;
    if (job.sample) {
        g.do_sample = true;
        g.temperature = 0.9f;
        g.has_seed = true;
        g.seed = 1234;
    }
    medgen_text *t = nullptr;
    if (medgen_generate(m, job.prompt.c_str(), &g, &t) != MEDGEN_OK) {
        return std::string("error: ") + medgen_last_error_message();
    }
    std::string ids;
    const int32_t *tokens = medgen_text_tokens(t);
    for (size_t i = 0; i < medgen_text_n_tokens(t); i++) ids += std::to_string(tokens[i]) + " ";
    std::string out = ids + "| " + medgen_text_str(t);
    medgen_text_free(t);
    return out;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s MODEL_PATH\n", argv[0]);
        return 2;
    }
    medgen_model_params p = medgen_model_params_default();
    p.threads = 2;
    medgen_model *m = nullptr;
    if (medgen_model_load(argv[1], &p, &m) != MEDGEN_OK) {
        std::fprintf(stderr, "load failed: %s\n", medgen_last_error_message());
        return 1;
    }
    const std::vector<Job> jobs = {
        {"Discharge summary: the patient", false},
        {"Chest X-ray shows", true},
        {"Medications on discharge include", false},
        {"患者男性，50岁，主诉", true},
    };
    std::vector<std::string> expected;
    for (const Job &job : jobs) expected.push_back(run(m, job));

    const int rounds = 3;
    std::vector<std::vector<std::string>> got(jobs.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < jobs.size(); i++) {
        threads.emplace_back([&, i] {
            for (int r = 0; r < rounds; r++) got[i].push_back(run(m, jobs[i]));
        });
    }
    for (std::thread &t : threads) t.join();
    medgen_model_free(m);

    int failures = 0;
    for (size_t i = 0; i < jobs.size(); i++) {
        if (expected[i].rfind("error", 0) == 0) {
            std::fprintf(stderr, "job %zu failed: %s\n", i, expected[i].c_str());
            failures++;
        }
        for (const std::string &g : got[i]) {
            if (g != expected[i]) {
                std::fprintf(stderr, "job %zu differs across threads:\n  %s\n  %s\n", i, expected[i].c_str(), g.c_str());
                failures++;
            }
        }
    }
    if (failures == 0) std::printf("4 threads x %d rounds: all results equal the single-threaded ones\n", rounds);
    return failures ? 1 : 0;
}
