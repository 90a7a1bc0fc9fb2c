"""The machine a benchmark ran on, for the line above its table: CPU model, SIMD flags, kernels."""

import os
import platform
import subprocess

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "asimd")


def cpu_name():
    """``lscpu``'s model name and the SIMD flags that matter here, e.g. ``AMD EPYC (avx avx2 fma)``."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    simd = [f for f in SIMD_FLAGS if f in flags]
    return f"{fields.get('Model name', '?').strip()} ({' '.join(simd) or 'no SIMD flags listed'})"


def describe():
    """One line: CPU, cores, load, convlab's SIMD path and threads, PyTorch's version if installed."""
    from convlab import fast_layers

    info = fast_layers.build_info()
    line = (f"CPU: {cpu_name()}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
            f"convlab SIMD path {info['simd_path']}, {info['threads']} thread(s)")
    try:
        import torch
        line += f"; PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    except ImportError:
        pass
    return line
