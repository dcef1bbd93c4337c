// A simulated fleet spread over several processes (`mpirun -np K cleave
// simulate`): rank 0 runs the aggregator and the split servers, evaluates
// and writes the run directory; every rank, rank 0 included, trains its
// share of each round's sampled sites, which reach rank 0's services over
// TCP with the same TLS channels and role code as in one process. MPI only
// places the processes and carries the plan of each round and the sites'
// reports (what a site sends the services goes over the fleet's channels).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace cleave::simulate {

class FleetRanks {
 public:
  virtual ~FleetRanks() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank 0's `text` on every rank.
  virtual void broadcast(std::string& text) = 0;
  // Every rank's `text`, in rank order, on rank 0 (empty elsewhere).
  virtual std::vector<std::string> gather(const std::string& text) = 0;
  // "MPI (Open MPI v4.1.4), rank 1 of 3".
  virtual std::string describe() const = 0;
  // The ranks on this one's machine (this one included): they share its cores.
  virtual int local_size() const = 0;
  // Whether the ranks run on more than one machine (then the services must
  // listen where the other machines reach them).
  virtual bool spans_machines() const = 0;
  // Ends every rank of the run (a rank that failed: the others would wait for it).
  [[noreturn]] virtual void abort(int status) = 0;
};

// The processes of `mpirun` (or Slurm's `srun`) when this one was started by
// one with more than one process; null otherwise, or when cleave was built
// without MPI. Initialises MPI (and finalises it when the result goes).
std::unique_ptr<FleetRanks> launched_ranks();

// The position in `sampled` of the sites rank `rank` of `size` trains: k with
// k % size == rank.
std::vector<size_t> share_of(const std::vector<size_t>& sampled, int rank, int size);

}  // namespace cleave::simulate
