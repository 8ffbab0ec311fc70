// Options shared by `gqa uptrain` and `gqa train` (both run uptrain/trainer), and the launch of
// several local processes for data parallel (--nproc) or joining a torchrun-style group.
#pragma once
#include <string>
#include <vector>

#include "cli/options.h"
#include "uptrain/trainer.h"

namespace gqa::cli {

// Adds the data, budget, optimizer, checkpoint and distributed options, bound to `o`.
void add_training_options(po::options_description& opts, TrainOptions& o);
// --bucket-mb in bytes (InputError when not positive).
std::size_t bucket_bytes_option(const po::variables_map& vm);
// Reads the options that need checking or converting after parsing (data lists, valid data).
void finish_training_options(const po::variables_map& vm, TrainOptions& o);
// `gqa VERB ARGS...` as a shell command line (arguments quoted where the shell needs it): what
// to run again to continue a stopped command.
std::string command_line(const std::string& verb, const Args& args);
// Runs the training in this process, or, with --nproc N > 1 outside a process group, re-runs
// this command as N local processes. Returns the exit code.
int run_training_command(const std::string& verb, const Args& args, const po::variables_map& vm, const TrainOptions& o);

}  // namespace gqa::cli
