// Threads and stress: 8 threads x ROUNDS generations on one medgen_model, every result
// equal to the single-threaded one for the same prompt and options (greedy and seeded
// sampling); with TINY_MODEL_PATH also a long generation cancelled from another thread and
// 1,000 load/free cycles of the tiny model with the process's RSS measured.
// Usage: stress_test MODEL_PATH ROUNDS [TINY_MODEL_PATH]
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "medgen.h"

namespace {

struct Job {
    std::string prompt;
    bool sample;
};

// The generated token ids and text, or "error: ..." (this thread's failure).
std::string run(medgen_model *m, const Job &job) {
    medgen_generation_params g = medgen_generation_params_default();
    g.max_new_tokens = 4;
    if (job.sample) {
        g.do_sample = true;
        g.temperature = 0.9f;
        g.has_seed = true;
        g.seed = 99;
    }
    medgen_text *t = nullptr;
    if (medgen_generate(m, job.prompt.c_str(), &g, &t) != MEDGEN_OK) {
        return std::string("error: ") + medgen_last_error_message();
    }
    std::string out;
    const int32_t *tokens = medgen_text_tokens(t);
    for (size_t i = 0; i < medgen_text_n_tokens(t); i++) out += std::to_string(tokens[i]) + " ";
    out += std::string("| ") + medgen_text_str(t);
    medgen_text_free(t);
    return out;
}

// Resident set size of this process, in KiB.
long rss_kib() {
    std::ifstream statm("/proc/self/statm");
    long pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * 4;
}

struct Cancel {
    std::atomic<bool> stop{false};
    std::atomic<int> pieces{0};
};

int on_piece(const char *, size_t, void *user_data) {
    auto *c = static_cast<Cancel *>(user_data);
    c->pieces++;
    return c->stop.load() ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL_PATH ROUNDS [TINY_MODEL_PATH]\n", argv[0]);
        return 2;
    }
    const int rounds = std::atoi(argv[2]);
    int failures = 0;
    medgen_model_params p = medgen_model_params_default();
    medgen_model *m = nullptr;
    if (medgen_model_load(argv[1], &p, &m) != MEDGEN_OK) {
        std::fprintf(stderr, "load failed: %s\n", medgen_last_error_message());
        return 1;
    }

    // 8 threads x ROUNDS generations.
    std::vector<Job> jobs;
    for (int i = 0; i < 8; i++) jobs.push_back({"Patient " + std::to_string(i) + " was admitted with", i % 2 == 1});
    std::vector<std::string> expected;
    for (const Job &job : jobs) expected.push_back(run(m, job));
    std::vector<int> wrong(jobs.size(), 0);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < jobs.size(); i++) {
        threads.emplace_back([&, i] {
            for (int r = 0; r < rounds; r++) {
                if (run(m, jobs[i]) != expected[i]) wrong[i]++;
            }
        });
    }
    for (std::thread &t : threads) t.join();
    for (size_t i = 0; i < jobs.size(); i++) {
        if (expected[i].rfind("error", 0) == 0 || wrong[i] > 0) {
            std::fprintf(stderr, "job %zu: %d of %d differ (%s)\n", i, wrong[i], rounds, expected[i].c_str());
            failures++;
        }
    }
    std::printf("RESULT threads {\"threads\": 8, \"rounds\": %d, \"failures\": %d}\n", rounds, failures);
    if (argc == 3) {
        medgen_model_free(m);
        return failures ? 1 : 0;
    }

    // A long generation, cancelled from another thread once it has started.
    Cancel cancel;
    std::thread canceller([&] {
        while (cancel.pieces.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        cancel.stop = true;
    });
    medgen_generation_params g = medgen_generation_params_default();
    g.max_new_tokens = 2000;
    g.min_new_tokens = 2000;
    medgen_text *t = nullptr;
    medgen_status s = medgen_generate_stream(m, "Write a long history of medicine.", &g, on_piece, &cancel, &t);
    canceller.join();
    if (s != MEDGEN_ERR_CANCELLED || t != nullptr || cancel.pieces.load() > 100) {
        std::fprintf(stderr, "cancel: status %s after %d pieces\n", medgen_status_str(s), cancel.pieces.load());
        failures++;
    }
    medgen_model_free(m);

    // 1,000 load/free cycles: the RSS after the first 100 (allocator pools warmed up) and
    // after all 1,000.
    long after_100 = 0;
    for (int i = 1; i <= 1000; i++) {
        medgen_model *tiny = nullptr;
        if (medgen_model_load(argv[3], &p, &tiny) != MEDGEN_OK) {
            std::fprintf(stderr, "cycle %d: %s\n", i, medgen_last_error_message());
            return 1;
        }
        medgen_model_free(tiny);
        if (i == 100) after_100 = rss_kib();
    }
    long after_1000 = rss_kib();
    std::printf("RESULT cycles {\"rss_after_100_kib\": %ld, \"rss_after_1000_kib\": %ld}\n", after_100, after_1000);
    return failures ? 1 : 0;
}
