// Streams a discharge summary of a clinical note with medgen's C ABI.
//
//   discharge_summary NOTE_FILE [MODEL_PATH]
//
// Build (after `make build`):
//   g++ -std=c++17 discharge_summary.cpp $(pkg-config --cflags --libs medgen) -o discharge_summary
// with PKG_CONFIG_PATH=target/release/pkgconfig; or with CMake: find_package(medgen) and
// target_link_libraries(app PRIVATE medgen::medgen).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "medgen.h"

namespace {

// Owns a handle and frees it with its medgen_*_free function.
template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const { Free(p); }
};
using Model = std::unique_ptr<medgen_model, Deleter<medgen_model, medgen_model_free>>;
using Text = std::unique_ptr<medgen_text, Deleter<medgen_text, medgen_text_free>>;

int fail(const char *what, medgen_status s) {
    std::cerr << what << ": " << medgen_status_str(s) << ": " << medgen_last_error_message() << "\n";
    return 1;
}

const char *const kSystem =
    "You are a clinical documentation assistant. Write a concise discharge summary of the "
    "note with the sections Diagnoses, Hospital Course, Medications and Follow-up. Use only "
    "facts stated in the note.";

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        std::cerr << "usage: " << argv[0] << " NOTE_FILE [MODEL_PATH]\n";
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) {
        std::cerr << "cannot read " << argv[1] << "\n";
        return 1;
    }
    std::stringstream note;
    note << in.rdbuf();
    const std::string text = note.str();

    medgen_model_params mp = medgen_model_params_default();
    medgen_model *raw_model = nullptr;
    medgen_status s = medgen_model_load(argc == 3 ? argv[2] : nullptr, &mp, &raw_model);
    if (s != MEDGEN_OK) return fail("loading the model", s);
    Model model(raw_model);

    medgen_generation_params gp = medgen_generation_params_default();
    gp.max_new_tokens = 200;
    const medgen_message messages[] = {{"system", kSystem}, {"user", text.c_str()}};
    auto print_piece = [](const char *piece, size_t len, void *) -> int {
        std::fwrite(piece, 1, len, stdout);
        std::fflush(stdout);
        return 0;
    };
    medgen_text *raw_text = nullptr;
    s = medgen_chat_stream(model.get(), messages, 2, &gp, print_piece, nullptr, &raw_text);
    if (s != MEDGEN_OK) return fail("generating", s);
    Text summary(raw_text);
    std::cerr << "\n[" << medgen_text_n_tokens(summary.get()) << " tokens, finish reason "
              << medgen_text_finish_reason(summary.get()) << "]\n";
    return 0;
}
