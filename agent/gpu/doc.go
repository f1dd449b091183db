// Package gpu detects the NVIDIA GPUs of a machine by running nvidia-smi.
//
// Contract:
//   - [Detect] runs `nvidia-smi --query-gpu=index,name,memory.total
//     --format=csv,noheader,nounits` found on PATH, with a timeout, and
//     returns one [Device] per line. A machine without nvidia-smi has no
//     GPUs: Detect returns [ErrNoNvidiaSMI] and the caller decides.
//   - [Model] turns a marketing name ("NVIDIA H100 80GB HBM3") into the short
//     family the cell's `gpu.model` label uses ("H100"), so that job
//     constraints such as `gpu.model = H100` read naturally.
package gpu
