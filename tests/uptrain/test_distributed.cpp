// Data-parallel communication: environment parsing, the trivial communicator, bucket planning,
// and real gloo collectives between processes started by launch_local_processes.
//
// Multi-process tests re-run this binary as workers: with GQA_TEST_WORKER=<name> set, main()
// runs that worker routine instead of the tests (see worker_main at the bottom). Workers write
// "key value" lines to GQA_TEST_OUT/rank<R>.txt; the tests read and check them.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "tests/test_util.h"
#include "uptrain/distributed.h"

namespace gqa {
namespace {

// ---- helpers shared by tests and workers ----------------------------------------------------

// Sets (or, with nullopt, unsets) environment variables for a scope, restoring them after.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::optional<std::string>>& values) {
    for (const auto& [name, value] : values) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      set(name, value);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) set(name, value);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  static void set(const std::string& name, const std::optional<std::string>& value) {
    if (value)
      ::setenv(name.c_str(), value->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
  std::map<std::string, std::optional<std::string>> saved_;
};

const std::vector<std::string> kDistributedVariables = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                        "MASTER_PORT"};

// Gradient-like tensors whose values depend on the rank: several sizes and two dtypes, one
// larger than the small buckets used below, an empty one and a non-contiguous one.
std::vector<at::Tensor> rank_tensors(int rank) {
  const std::vector<std::pair<std::vector<int64_t>, at::ScalarType>> shapes = {
      {{3}, at::kFloat},       {{17, 5}, at::kFloat}, {{7}, at::kDouble}, {{1000}, at::kFloat},
      {{2, 3, 4}, at::kFloat}, {{0}, at::kFloat},     {{9}, at::kDouble}, {{4, 6}, at::kFloat}};
  std::vector<at::Tensor> tensors;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const auto& [sizes, dtype] = shapes[i];
    const int64_t count = c10::multiply_integers(sizes);
    const at::Tensor values = at::sin(at::arange(count, at::kDouble) * 0.37 * (rank + 1) + rank + i);
    tensors.push_back(values.to(dtype).reshape(sizes));
  }
  tensors.back() = tensors.back().t();  // {6, 4} view with strides (1, 6)
  return tensors;
}

double max_abs_difference(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i].numel() == 0) continue;
    worst = std::max(worst, (got[i].to(at::kDouble) - want[i].to(at::kDouble)).abs().max().item<double>());
  }
  return worst;
}

std::string worker_file(const std::string& folder, int rank) {
  return folder + "/rank" + std::to_string(rank) + ".txt";
}

std::map<std::string, double> read_results(const std::string& path) {
  std::map<std::string, double> results;
  std::istringstream lines(test::read_text(path));
  std::string key;
  double value = 0;
  while (lines >> key >> value) results[key] = value;
  return results;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    throw std::runtime_error("cannot find a free port");
  ::close(fd);
  return ntohs(address.sin_port);
}

// Runs this binary as `nproc` workers of kind `worker`; returns (exit code, seconds taken).
std::pair<int, double> launch_workers(int nproc, const std::string& worker, const std::string& out_folder,
                                      const std::map<std::string, std::optional<std::string>>& extra = {}) {
  auto variables = extra;
  variables["GQA_TEST_WORKER"] = worker;
  variables["GQA_TEST_OUT"] = out_folder;
  ScopedEnv scoped(variables);
  const auto start = std::chrono::steady_clock::now();
  const int code = launch_local_processes(nproc, {current_executable()}, /*grace_s=*/2);
  return {code, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

// ---- DistributedEnv::from_environment -------------------------------------------------------

TEST(FromEnvironment, DefaultsWhenUnset) {
  std::map<std::string, std::optional<std::string>> unset;
  for (const auto& name : kDistributedVariables) unset[name] = std::nullopt;
  ScopedEnv scoped(unset);
  const DistributedEnv env = DistributedEnv::from_environment();
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.local_rank, 0);
  EXPECT_EQ(env.master_addr, "127.0.0.1");
  EXPECT_EQ(env.master_port, 29500);
  EXPECT_FALSE(env.is_distributed());
}

TEST(FromEnvironment, ReadsEveryVariable) {
  ScopedEnv scoped(
      {{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node-0"}, {"MASTER_PORT", "23456"}});
  const DistributedEnv env = DistributedEnv::from_environment();
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "node-0");
  EXPECT_EQ(env.master_port, 23456);
  EXPECT_TRUE(env.is_distributed());
}

TEST(FromEnvironment, MalformedValuesNameTheVariable) {
  const std::vector<std::pair<std::map<std::string, std::optional<std::string>>, std::string>> cases = {
      {{{"RANK", "abc"}}, "RANK"},
      {{{"RANK", "1x"}}, "RANK"},
      {{{"RANK", ""}}, "RANK"},
      {{{"RANK", "-1"}}, "RANK"},
      {{{"RANK", "2"}, {"WORLD_SIZE", "2"}}, "RANK"},  // rank >= world size
      {{{"RANK", "1"}}, "RANK"},                       // WORLD_SIZE unset = 1
      {{{"WORLD_SIZE", "0"}}, "WORLD_SIZE"},
      {{{"WORLD_SIZE", "two"}}, "WORLD_SIZE"},
      {{{"WORLD_SIZE", "99999999999999999999"}}, "WORLD_SIZE"},
      {{{"LOCAL_RANK", "x"}}, "LOCAL_RANK"},
      {{{"MASTER_PORT", "70000"}}, "MASTER_PORT"},
      {{{"MASTER_PORT", "0"}}, "MASTER_PORT"},
      {{{"MASTER_PORT", " 29500"}}, "MASTER_PORT"},
      {{{"MASTER_ADDR", ""}}, "MASTER_ADDR"},
  };
  for (const auto& [values, variable] : cases) {
    std::map<std::string, std::optional<std::string>> all;
    for (const auto& name : kDistributedVariables) all[name] = std::nullopt;
    for (const auto& [name, value] : values) all[name] = value;
    ScopedEnv scoped(all);
    try {
      DistributedEnv::from_environment();
      ADD_FAILURE() << "no error for " << variable << "=" << values.at(variable).value_or("");
    } catch (const InputError& error) {
      EXPECT_EQ(error.file(), "environment");
      EXPECT_EQ(error.field(), variable) << error.what();
    }
  }
}

// ---- single process and bucket planning ------------------------------------------------------

TEST(SingleProcess, CollectivesLeaveValuesAlone) {
  auto communicator = single_process();
  EXPECT_EQ(communicator->rank(), 0);
  EXPECT_EQ(communicator->world_size(), 1);
  auto tensors = rank_tensors(3);
  const auto before = rank_tensors(3);
  communicator->all_reduce_mean(tensors);
  communicator->broadcast(tensors);
  communicator->barrier();
  EXPECT_EQ(max_abs_difference(tensors, before), 0.0);
  EXPECT_EQ(communicator->all_reduce_sum({1.5, -2.0}), (std::vector<double>{1.5, -2.0}));
}

TEST(SingleProcess, WorldOfOneNeedsNoRendezvous) {
  DistributedEnv env;
  env.master_port = free_port();  // nobody listens: any rendezvous attempt would fail
  auto communicator = join_process_group(env, at::kCPU, /*timeout_s=*/1);
  EXPECT_EQ(communicator->world_size(), 1);
  EXPECT_EQ(communicator->all_reduce_sum({4.0}), std::vector<double>{4.0});
}

TEST(PlanBuckets, GroupsByDtypeInOrderWithinTheByteLimit) {
  const std::vector<at::Tensor> tensors = {
      at::zeros({10}, at::kFloat),   // 0: 40 bytes
      at::zeros({4}, at::kDouble),   // 1: 32 bytes
      at::zeros({5}, at::kFloat),    // 2: 20 -> float bucket at 60
      at::zeros({100}, at::kFloat),  // 3: 400, larger than a bucket: alone
      at::zeros({2}, at::kDouble),   // 4: 16 -> double bucket at 48
      at::zeros({3}, at::kFloat),    // 5: 12, new float bucket (the big one is full)
      at::zeros({8}, at::kDouble),   // 6: 64 would exceed 64 with 48 already in: new bucket
  };
  const std::vector<std::vector<std::size_t>> expected = {{0, 2}, {1, 4}, {3}, {5}, {6}};
  EXPECT_EQ(plan_buckets(tensors, 64), expected);
  EXPECT_EQ(plan_buckets(tensors, kDefaultBucketBytes),
            (std::vector<std::vector<std::size_t>>{{0, 2, 3, 5}, {1, 4, 6}}));
}

// ---- rendezvous failures --------------------------------------------------------------------

TEST(Rendezvous, UnreachableMasterIsAnInputErrorNamingTheAddress) {
  DistributedEnv env;
  env.rank = 1;
  env.world_size = 2;
  env.master_port = free_port();
  const auto start = std::chrono::steady_clock::now();
  try {
    join_process_group(env, at::kCPU, /*timeout_s=*/2);
    ADD_FAILURE() << "joined a process group nobody serves";
  } catch (const InputError& error) {
    EXPECT_EQ(error.field(), "MASTER_ADDR:MASTER_PORT");
    EXPECT_NE(std::string(error.what()).find("127.0.0.1:" + std::to_string(env.master_port)), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("rank 1 of 2"), std::string::npos) << error.what();
    EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
}

// Rank 0 serves the store; it fails when its workers never come, or when the port is taken.
void expect_master_fails(const DistributedEnv& env) {
  try {
    join_process_group(env, at::kCPU, /*timeout_s=*/1);
    ADD_FAILURE() << "rank 0 joined alone";
  } catch (const InputError& error) {
    EXPECT_EQ(error.field(), "MASTER_ADDR:MASTER_PORT");
    EXPECT_NE(std::string(error.what()).find("rank 0 of 2"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find(":" + std::to_string(env.master_port)), std::string::npos) << error.what();
  }
}

TEST(Rendezvous, MasterWhoseWorkersNeverComeTimesOut) {
  DistributedEnv env;
  env.world_size = 2;
  env.master_port = free_port();
  expect_master_fails(env);
}

TEST(Rendezvous, MasterPortInUse) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  DistributedEnv env;
  env.world_size = 2;
  env.master_port = ntohs(address.sin_port);
  expect_master_fails(env);
  ::close(fd);
}

// ---- multi-process ----------------------------------------------------------------------------

TEST(Collectives, MeanSumAndBroadcastAgreeAcrossTwoProcesses) {
  constexpr std::size_t kSmallBuckets = 256;
  // The small buckets really split the tensors, with at least one bucket holding several.
  const auto buckets = plan_buckets(rank_tensors(0), kSmallBuckets);
  ASSERT_GT(buckets.size(), 3u);
  ASSERT_TRUE(std::any_of(buckets.begin(), buckets.end(), [](const auto& b) { return b.size() > 1; }));

  for (const std::size_t bucket_bytes : {kSmallBuckets, kDefaultBucketBytes}) {
    SCOPED_TRACE("bucket_bytes " + std::to_string(bucket_bytes));
    test::TempDir out("gqa-dist");
    const auto [code, seconds] =
        launch_workers(2, "collectives", out.path, {{"GQA_TEST_BUCKET_BYTES", std::to_string(bucket_bytes)}});
    ASSERT_EQ(code, 0);
    int port = -1;
    for (int rank = 0; rank < 2; ++rank) {
      SCOPED_TRACE("rank " + std::to_string(rank));
      auto results = read_results(worker_file(out.path, rank));
      ASSERT_EQ(results.count("done"), 1u) << "worker did not finish";
      EXPECT_EQ(results["rank"], rank);
      EXPECT_EQ(results["local_rank"], rank);
      EXPECT_EQ(results["world_size"], 2);
      EXPECT_EQ(results["local_world_size"], 2);
      if (port < 0) port = int(results["master_port"]);
      EXPECT_EQ(results["master_port"], port);  // both ranks were sent to one rendezvous
      EXPECT_LT(results.at("mean_error"), 1e-6);
      EXPECT_GT(results.at("mean_change"), 0.1);  // the values really moved
      EXPECT_EQ(results.at("broadcast_error"), 0.0);
      EXPECT_EQ(results.at("low_precision_error"), 0.0);
      EXPECT_EQ(results["sum_0"], 3.0);  // (0 + 1) + (1 + 1)
      EXPECT_EQ(results["sum_1"], 1.0);  // 0.5 + 0.5
    }
  }
}

TEST(Launch, FailingProcessStopsTheOthersAndGivesItsExitCode) {
  test::TempDir out("gqa-dist");
  // Rank 1 exits 3 after joining; rank 0 would sleep 60 s.
  const auto [code, seconds] = launch_workers(2, "exit3", out.path);
  EXPECT_EQ(code, 3);
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(files::exists(out.path + "/rank0.started"));
  EXPECT_FALSE(files::exists(out.path + "/rank0.finished"));
}

TEST(Launch, ProcessIgnoringSigtermIsKilledAfterTheGracePeriod) {
  test::TempDir out("gqa-dist");
  const auto [code, seconds] = launch_workers(2, "exit3_deaf", out.path);  // grace period: 2 s
  EXPECT_EQ(code, 3);
  EXPECT_GE(seconds, 2.0);
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(files::exists(out.path + "/rank0.started"));
  EXPECT_FALSE(files::exists(out.path + "/rank0.finished"));
}

TEST(Launch, ProcessKilledBySignalGives128PlusSignal) {
  test::TempDir out("gqa-dist");
  const auto [code, seconds] = launch_workers(2, "sigkill", out.path);
  EXPECT_EQ(code, 128 + SIGKILL);
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(files::exists(out.path + "/rank0.started"));
  EXPECT_FALSE(files::exists(out.path + "/rank0.finished"));
}

TEST(Launch, MissingExecutableGives127) { EXPECT_EQ(launch_local_processes(2, {"/nonexistent/gqa-worker"}), 127); }

TEST(Launch, RejectsBadArguments) {
  EXPECT_THROW(launch_local_processes(0, {current_executable()}), InputError);
  EXPECT_THROW(launch_local_processes(2, {}), InputError);
}

// ---- worker routines (run in the child processes) ---------------------------------------------

void write_results(const std::string& folder, int rank, const std::map<std::string, double>& results) {
  std::ostringstream text;
  text.precision(17);
  for (const auto& [key, value] : results) text << key << " " << value << "\n";
  const std::string path = worker_file(folder, rank);
  test::write_text(path + ".tmp", text.str());
  if (!files::rename(path + ".tmp", path).empty()) throw std::runtime_error("cannot write " + path);
}

void touch(const std::string& path) { test::write_text(path, ""); }

int collectives_worker(const std::string& out) {
  const DistributedEnv env = DistributedEnv::from_environment();
  const std::size_t bucket_bytes = std::stoul(std::getenv("GQA_TEST_BUCKET_BYTES"));
  auto communicator = join_process_group(env, at::kCPU, /*timeout_s=*/30, bucket_bytes);
  const int world = communicator->world_size();
  std::map<std::string, double> results = {{"rank", communicator->rank()},
                                           {"world_size", world},
                                           {"local_rank", env.local_rank},
                                           {"master_port", env.master_port},
                                           {"local_world_size", std::atof(std::getenv("LOCAL_WORLD_SIZE"))}};

  // Mean: every rank rebuilds every rank's tensors and averages them in double.
  std::vector<at::Tensor> tensors = rank_tensors(env.rank);
  const std::vector<at::Tensor> before = rank_tensors(env.rank);
  std::vector<at::Tensor> expected;
  for (const at::Tensor& tensor : before) expected.push_back(at::zeros_like(tensor, at::kDouble));
  for (int rank = 0; rank < world; ++rank) {
    const auto theirs = rank_tensors(rank);
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += theirs[i].to(at::kDouble) / world;
  }
  communicator->all_reduce_mean(tensors);
  results["mean_error"] = max_abs_difference(tensors, expected);
  results["mean_change"] = max_abs_difference(tensors, before);

  // Broadcast: parameters (a leaf that requires grad), an integer tensor, rank-dependent values.
  std::vector<at::Tensor> parameters = rank_tensors(env.rank);
  parameters[1].requires_grad_(true);
  parameters.push_back(at::arange(5, at::kLong) * (env.rank + 1));
  std::vector<at::Tensor> root = rank_tensors(0);
  root.push_back(at::arange(5, at::kLong));
  communicator->broadcast(parameters);
  results["broadcast_error"] = max_abs_difference(parameters, root);

  // Half precision: small integers, so the mean is exact. An empty tensor alone in its bucket.
  std::vector<at::Tensor> low_precision = {at::arange(8, at::kBFloat16) * (env.rank + 1),
                                           at::arange(8, at::kHalf) * (env.rank + 1), at::zeros({0}, at::kHalf)};
  communicator->all_reduce_mean(low_precision);
  const at::Tensor low_expected = at::arange(8, at::kDouble) * (world + 1) / 2.0;
  results["low_precision_error"] =
      max_abs_difference({low_precision[0], low_precision[1]}, {low_expected, low_expected});

  const auto sums = communicator->all_reduce_sum({env.rank + 1.0, 0.5});
  results["sum_0"] = sums.at(0);
  results["sum_1"] = sums.at(1);
  communicator->barrier();
  results["done"] = 1;
  write_results(out, env.rank, results);
  return 0;
}

// Rank 0 stands in for a long training step (deaf to SIGTERM with `ignore_sigterm`); rank 1
// fails in its own way (`fail`) once rank 0 has started it.
int failing_worker(const std::string& out, bool join, const std::function<int()>& fail, bool ignore_sigterm = false) {
  const DistributedEnv env = DistributedEnv::from_environment();
  if (ignore_sigterm && env.rank == 0) ::signal(SIGTERM, SIG_IGN);
  std::unique_ptr<Communicator> communicator;
  if (join) communicator = join_process_group(env, at::kCPU, /*timeout_s=*/30);
  const std::string started = out + "/rank0.started";
  if (env.rank == 1) {
    while (!files::exists(started)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return fail();
  }
  touch(started);
  std::this_thread::sleep_for(std::chrono::seconds(60));
  touch(out + "/rank0.finished");
  return 0;
}

int worker_main(const std::string& worker) {
  const std::string out = std::getenv("GQA_TEST_OUT");
  if (worker == "collectives") return collectives_worker(out);
  if (worker == "exit3") return failing_worker(out, /*join=*/true, [] { return 3; });
  if (worker == "exit3_deaf")
    return failing_worker(
        out, /*join=*/false, [] { return 3; }, /*ignore_sigterm=*/true);
  if (worker == "sigkill") return failing_worker(out, /*join=*/false, [] { return ::raise(SIGKILL); });
  std::fprintf(stderr, "unknown GQA_TEST_WORKER %s\n", worker.c_str());
  return 2;
}

}  // namespace
}  // namespace gqa

int main(int argc, char** argv) {
  if (const char* worker = std::getenv("GQA_TEST_WORKER")) {
    try {
      return gqa::worker_main(worker);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "worker %s: %s\n", worker, error.what());
      return 1;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
