#include "simulate/fleet_ranks.h"

#include <cstdlib>
#include <stdexcept>

#ifdef CLEAVE_HAVE_MPI
// The C API only: Open MPI's and MPICH's deprecated C++ bindings stay out.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace cleave::simulate {

std::vector<size_t> share_of(const std::vector<size_t>& sampled, int rank, int size) {
  std::vector<size_t> share;
  for (size_t k = 0; k < sampled.size(); ++k) {
    if (static_cast<int>(k % static_cast<size_t>(size)) == rank) share.push_back(sampled[k]);
  }
  return share;
}

namespace {

// How many processes the launcher that started this one started, by the
// variables it sets (1: none): Open MPI's mpirun, MPICH/Hydra and PMIx.
// Slurm's srun sets SLURM_NTASKS, which a batch script's own steps see too;
// it counts only where MPI can tell what it means (a lone process is a run
// of one).
int launched_size(bool with_slurm) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) {
    if (!with_slurm && std::string(name) == "SLURM_NTASKS") continue;
    if (const char* value = std::getenv(name)) return std::atoi(value);
  }
  return 1;
}

}  // namespace

#ifdef CLEAVE_HAVE_MPI
namespace {

void check(int status, const char* call) {
  if (status != MPI_SUCCESS) throw std::runtime_error(std::string(call) + " failed (MPI error " + std::to_string(status) + ")");
}

class MpiRanks : public FleetRanks {
 public:
  MpiRanks() {
    int provided = 0;
    // Only the main thread calls MPI; the fleet's other threads never do.
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    library_ = std::string(version, static_cast<size_t>(length));
    library_ = library_.substr(0, library_.find(','));   // "Open MPI v4.1.4"
    MPI_Comm local;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    check(MPI_Comm_size(local, &local_size_), "MPI_Comm_size");
    int spans = local_size_ < size_ ? 1 : 0, any = 0;   // some rank shares its machine with fewer than all
    check(MPI_Allreduce(&spans, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    spans_ = any != 0;
    MPI_Comm_free(&local);
  }
  ~MpiRanks() override { MPI_Finalize(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void broadcast(std::string& text) override {
    long long length = static_cast<long long>(text.size());
    check(MPI_Bcast(&length, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD), "MPI_Bcast");
    text.resize(static_cast<size_t>(length));
    if (length > 0) check(MPI_Bcast(text.data(), static_cast<int>(length), MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }

  std::vector<std::string> gather(const std::string& text) override {
    const int length = static_cast<int>(text.size());
    std::vector<int> lengths(rank_ == 0 ? static_cast<size_t>(size_) : 0);
    check(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
    std::vector<int> offsets(lengths.size());
    std::string all;
    if (rank_ == 0) {
      int total = 0;
      for (size_t r = 0; r < lengths.size(); ++r) {
        offsets[r] = total;
        total += lengths[r];
      }
      all.resize(static_cast<size_t>(total));
    }
    check(MPI_Gatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0,
                      MPI_COMM_WORLD),
          "MPI_Gatherv");
    std::vector<std::string> texts;
    for (size_t r = 0; r < lengths.size(); ++r) texts.push_back(all.substr(offsets[r], lengths[r]));
    return texts;
  }

  int local_size() const override { return local_size_; }
  bool spans_machines() const override { return spans_; }

  [[noreturn]] void abort(int status) override {
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);
  }

  std::string describe() const override {
    return "MPI (" + library_ + "), rank " + std::to_string(rank_) + " of " + std::to_string(size_);
  }

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
  bool spans_ = false;
  std::string library_;
};

}  // namespace

std::unique_ptr<FleetRanks> launched_ranks() {
  if (launched_size(/*with_slurm=*/true) <= 1) return nullptr;
  return std::make_unique<MpiRanks>();
}
#else
std::unique_ptr<FleetRanks> launched_ranks() {
  const int size = launched_size(/*with_slurm=*/false);
  if (size > 1) {
    throw std::runtime_error("started by an MPI launcher as one of " + std::to_string(size) +
                             " processes, but this cleave was built without MPI: install libopenmpi-dev and "
                             "rebuild (scripts/setup.sh), or run without mpirun");
  }
  return nullptr;
}
#endif

}  // namespace cleave::simulate
