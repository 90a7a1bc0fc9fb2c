"""Print how convlab's fast kernels were built, which SIMD path they take here, and why.

Usage::

    python -m convlab.info                 # the build, the path and how it was chosen
    python -m convlab.info --recalibrate   # measure the paths again and rewrite the cache

The same facts as a dict: :func:`convlab.fast_layers.build_info`; how the
path is chosen: :mod:`convlab.fast_layers.calibration`.
"""

import argparse
import sys

import numpy as np

import convlab
from convlab.fast_layers import build_info, calibration


def _times(times, dropped):
    """``avx512 2.10 ms, avx2 1.82 ms, plain 52.0 ms (one trial, too slow)``."""
    parts = [f"{path} {ms:.2f} ms" for path, ms in (times or {}).items()]
    parts += [f"{path} {ms:.1f} ms (one trial, too slow)" for path, ms in (dropped or {}).items()]
    return ", ".join(parts)


def format_choice(choice):
    """The lines that say how the SIMD path was chosen (see
    :func:`convlab.fast_layers.calibration.simd_choice`), as a list of str."""
    how = choice["how"]
    if how in ("calibrated", "cached"):
        chosen, default = choice["simd_path"], choice["default"]
        why = ("the CPUID default, no other path clearly faster" if chosen == default else
               f"faster than the CPUID default {default} by more than {calibration.MARGIN:.0%}")
        when = (f"measured now in {choice['calibration_ms']:.0f} ms" if how == "calibrated" else
                f"measured {choice.get('measured_at') or 'earlier'}, read from the cache")
        lines = [f"chosen:    {how}: {chosen}, {why} ({when})",
                 f"measured:  {_times(choice['times_ms'], choice['dropped_ms'])} "
                 f"(best trial, direct 3x3 convolutions, one thread)"]
    else:
        lines = [f"chosen:    {how}"]
    cache = choice.get("cache_file")
    lines.append(f"cache:     {cache if cache else 'none (' + calibration.cache_dir() + ' not used)'}")
    return lines


def format_build_info(info=None):
    """The lines ``python -m convlab.info`` prints, as one string.

    Parameters
    ----------
    info : dict, optional
        As returned by :func:`convlab.fast_layers.build_info` (default: now).
    """
    info = build_info() if info is None else info
    openmp = (f"on (version {info['openmp_version']}), {info['threads']} threads"
              if info["openmp"] else "off (the kernels run on one thread)")
    return "\n".join([
        f"convlab {convlab.__version__}, NumPy {np.__version__}, Python {sys.version.split()[0]}",
        f"machine:   {info['machine']}",
        f"SIMD path: {info['simd_path']} (this CPU can run: {', '.join(info['simd_paths'])})",
    ] + (format_choice(info["simd_choice"]) if "simd_choice" in info else []) + [
        f"OpenMP:    {openmp}",
        f"compiler:  {info['compiler']}",
    ] + (["note:      a test build: its avx512 kernels are compiled for AVX2"]
         if info.get("avx512_on_avx2") else []))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convlab.info", description=__doc__.split("\n")[0])
    parser.add_argument("--recalibrate", action="store_true",
                        help="measure the SIMD paths again and rewrite the calibration cache")
    args = parser.parse_args(argv)
    try:
        if args.recalibrate:
            calibration.recalibrate()
        text = format_build_info()
    except ValueError as error:       # CONVLAB_SIMD or CONVLAB_CALIBRATE forbids it, or is invalid
        print(f"python -m convlab.info: error: {'--recalibrate: ' if args.recalibrate else ''}{error}",
              file=sys.stderr)
        sys.exit(2)
    print(text)


if __name__ == "__main__":
    main()
