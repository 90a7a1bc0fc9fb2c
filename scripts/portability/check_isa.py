#!/usr/bin/env python3
"""Fail if a shared library runs AVX (or later) instructions outside dispatched functions.

    python3 check_isa.py [--allow REGEX] LIB.so [LIB.so ...]
    python3 check_isa.py --selftest [--cc gcc]

The compiled kernels must load and run on any x86-64 CPU. Instructions that a
CPU without AVX does not have (every VEX- or EVEX-encoded one: AVX, AVX2, FMA,
F16C, AVX-512, the BMI1/BMI2 integer instructions and AVX-512 mask registers)
may appear only in functions that are called after a run-time check of the
CPU, and those functions are recognised by their symbol name: it must match
``--allow`` (by default: contains ``avx2`` or ``avx512``, as in ``foo_avx2``,
``foo_avx2_fma`` or ``foo_avx512``).

For every library it runs ``objdump -d --no-show-raw-insn -w``, attributes each
instruction to the function (symbol) it belongs to, and prints every function
that breaks the rule with the number of offending instructions and a few of
their mnemonics. A function whose name says AVX2 but that uses AVX-512 (zmm
or mask registers, EVEX-only forms) is reported too, since it would crash on
an AVX2 CPU. Exit status: 0 clean, 1 violations, 2 usage or tool error.

``--selftest`` compiles scripts/portability/isa_fixture.c twice and checks that
the checker passes a library whose only AVX code is in ``foo_avx2`` (and does
see the AVX there), and fails one whose plain function was compiled with
-mavx2: proof that the check is not vacuous.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

# Names of functions that may contain AVX: named for their ISA (foo_avx2, foo_avx512f),
# which the kernels call only after asking the CPU (src/convlab/_fast/simd.h); GCC's
# own copies keep the name (foo_avx2.constprop.0, foo_avx2.cold).
DEFAULT_ALLOW = r"avx2|avx512"

# Prefixes objdump prints before the mnemonic (AT&T syntax).
PREFIXES = {
    "lock", "rep", "repz", "repnz", "repe", "repne", "notrack", "bnd", "data16",
    "data32", "addr32", "addr16", "cs", "ds", "es", "fs", "gs", "ss", "xacquire",
    "xrelease", "{vex}", "{vex2}", "{vex3}", "{evex}", "{load}", "{store}", "{disp8}",
    "{disp32}", "{nooptimize}",
}
# Mnemonics starting with "v" that are not VEX/EVEX SIMD (virtualisation, segment checks).
V_NOT_SIMD = re.compile(r"^(verr|verw|vm[a-z]*)$")
# VEX-encoded instructions whose mnemonic does not start with "v".
VEX_GPR = re.compile(
    r"^(andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx)[lq]?$"
)
# AVX-512 opmask instructions (kmovw, kandb, kortestq, ...) and AMX tile ones.
K_MASK = re.compile(r"^k(mov|and|andn|or|xor|xnor|not|ortest|test|shiftl|shiftr|add|unpck)[bwdq]{0,2}$")
AMX = re.compile(r"^(ldtilecfg|sttilecfg|tilerelease|tilezero|tileloadd|tileloaddt1|tilestored|tdp[a-z0-9]*)$")
# Signs of EVEX (AVX-512) in the operands: zmm, xmm16-31/ymm16-31, mask registers, broadcast/rounding.
EVEX_OPERANDS = re.compile(r"%zmm|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|%k[0-7]\b|\{1to\d+\}|\{z\}|-sae\}|\{sae\}")
# AVX-512-only mnemonic families (EVEX even on xmm/ymm).
EVEX_MNEMONICS = re.compile(
    r"^v(pternlog|permt2|permi2|align[dq]|compress|expand|fixupimm|getexp|getmant|range|reduce|"
    r"rndscale|scalef|rcp14|rsqrt14|pconflict|plzcnt|pmov[a-z0-9]*2m|pmovm2|dbpsadbw|pabsq|pmaxsq|"
    r"pmaxuq|pminsq|pminuq|pmullq|prol|pror|psraq|cvt[a-z0-9]*2u|cvtu|cvt[a-z]*2qq|cvtqq|fpclass|"
    r"pcmp[a-z]*\$|pmovdb|pmovdw|pmovqb|pmovqw|pmovqd|pmovwb|pmovs|pmovus|extract[a-z0-9]*x[248]|"
    r"insert[a-z0-9]*x[248]|broadcast[fi](32x[248]|64x[24])|shuf[fi](32x4|64x2)|pbroadcastm)"
)
SYMBOL_LINE = re.compile(r"^([0-9a-f]+) <(.+)>:\s*$")
INSN_LINE = re.compile(r"^\s*[0-9a-f]+:\s+(\S.*)$")


def classify(insn: str) -> tuple[str, str] | None:
    """Return (mnemonic, kind) for an instruction that needs AVX or later, else None.

    kind is "evex" for AVX-512 (needs an AVX-512 CPU) and "vex" for AVX/AVX2/FMA/BMI.
    """
    tokens = insn.split()
    while tokens and (tokens[0] in PREFIXES or tokens[0].startswith("rex")):
        tokens.pop(0)
    if not tokens:
        return None
    mnemonic = tokens[0]
    operands = " ".join(tokens[1:])
    if mnemonic.startswith("(bad)"):
        return None
    if K_MASK.match(mnemonic):
        return mnemonic, "evex"
    if AMX.match(mnemonic):
        return mnemonic, "evex"
    is_v = mnemonic.startswith("v") and not V_NOT_SIMD.match(mnemonic)
    if is_v or "%ymm" in operands or "%zmm" in operands:
        if EVEX_OPERANDS.search(operands) or EVEX_MNEMONICS.match(mnemonic):
            return mnemonic, "evex"
        return mnemonic, "vex"
    if VEX_GPR.match(mnemonic):
        return mnemonic, "vex"
    return None


def disassemble(lib: Path, objdump: str) -> str:
    # -w: one instruction per line however long; no raw bytes, so the text is the mnemonic.
    proc = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", "-w", str(lib)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{objdump} failed on {lib}: {proc.stderr.strip()}")
    return proc.stdout


def has_symtab(lib: Path, objdump: str) -> bool:
    """A stripped library keeps only exported symbols: its static functions could not be told apart."""
    proc = subprocess.run([objdump, "-t", str(lib)], capture_output=True, text=True)
    return proc.returncode == 0 and "no symbols" not in proc.stdout


def scan(lib: Path, allow: re.Pattern, objdump: str = "objdump"):
    """Per function: Counter of offending mnemonics; also the allowed functions that use AVX."""
    bad: dict[str, Counter] = defaultdict(Counter)
    allowed_avx: dict[str, Counter] = defaultdict(Counter)
    func = "<no symbol>"
    n_insn = 0
    for line in disassemble(lib, objdump).splitlines():
        m = SYMBOL_LINE.match(line)
        if m:
            func = m.group(2)
            continue
        m = INSN_LINE.match(line)
        if not m:
            continue
        n_insn += 1
        hit = classify(m.group(1))
        if hit is None:
            continue
        mnemonic, kind = hit
        name_ok = allow.search(func) is not None
        # An "avx2" function must still not use AVX-512: it runs on AVX2-only CPUs.
        if name_ok and kind == "evex" and "avx512" not in func.lower() and not re.search(r"x86_64_v4", func):
            bad[func][mnemonic + " (AVX-512)"] += 1
        elif name_ok:
            allowed_avx[func][mnemonic] += 1
        else:
            bad[func][mnemonic] += 1
    return bad, allowed_avx, n_insn


def report(libs: list[Path], allow: re.Pattern, objdump: str, quiet: bool = False) -> tuple[int, int]:
    """Print findings; return (number of offending functions, number of allowed AVX functions)."""
    total_bad_funcs = total_bad_insns = total_allowed = 0
    for lib in libs:
        bad, allowed_avx, n_insn = scan(lib, allow, objdump)
        if n_insn == 0:
            raise RuntimeError(f"{lib}: objdump printed no instructions")
        total_allowed += len(allowed_avx)
        n_bad = sum(sum(c.values()) for c in bad.values())
        total_bad_funcs += len(bad)
        total_bad_insns += n_bad
        if quiet:
            continue
        print(f"{lib}: {n_insn} instructions, {len(bad)} function(s) with AVX outside "
              f"dispatched code ({n_bad} instructions), {len(allowed_avx)} dispatched AVX function(s)")
        for func, counter in sorted(bad.items(), key=lambda kv: -sum(kv[1].values())):
            examples = ", ".join(f"{m} x{n}" for m, n in counter.most_common(4))
            print(f"  FORBIDDEN  {func}: {sum(counter.values())} ({examples})")
        for func, counter in sorted(allowed_avx.items()):
            print(f"  allowed    {func}: {sum(counter.values())} AVX instructions")
    if not quiet:
        print(f"total: {total_bad_funcs} function(s), {total_bad_insns} instruction(s) needing AVX "
              f"or later outside dispatched functions; "
              f"{total_allowed} dispatched function(s) use AVX")
    return total_bad_funcs, total_allowed


def selftest(cc: str, objdump: str, allow: re.Pattern) -> int:
    """Build the fixture library twice and check that the checker tells them apart."""
    src = Path(__file__).with_name("isa_fixture.c")
    tmp = Path(tempfile.mkdtemp(prefix="check-isa-selftest."))
    try:
        good, bad = tmp / "libgood.so", tmp / "libbad.so"
        base = [cc, "-O3", "-shared", "-fPIC", "-o"]
        subprocess.run(base + [str(good), str(src)], check=True)
        subprocess.run(base + [str(bad), "-mavx2", "-mfma", str(src)], check=True)
        n_bad, n_allowed = report([good], allow, objdump, quiet=True)
        ok = True
        if n_bad != 0:
            print(f"selftest: FAILED: the clean fixture has {n_bad} offending function(s):")
            report([good], allow, objdump)
            ok = False
        if n_allowed == 0:
            print("selftest: FAILED: the checker did not see the AVX in foo_avx2 (it would pass anything)")
            ok = False
        n_bad2, _ = report([bad], allow, objdump, quiet=True)
        bad_funcs = scan(bad, allow, objdump)[0]
        if "foo_plain" not in bad_funcs:
            print(f"selftest: FAILED: foo_plain compiled with -mavx2 was not reported (got {sorted(bad_funcs)})")
            ok = False
        if ok:
            print(f"selftest: ok (clean fixture passes with {n_allowed} dispatched AVX function(s); "
                  f"the -mavx2 fixture fails with {n_bad2} function(s): {', '.join(sorted(bad_funcs))})")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("libs", nargs="*", type=Path, help="shared libraries to check")
    ap.add_argument("--allow", default=DEFAULT_ALLOW,
                    help=f"regex a function name must match to contain AVX (default {DEFAULT_ALLOW!r})")
    ap.add_argument("--objdump", default=os.environ.get("OBJDUMP", "objdump"))
    ap.add_argument("--selftest", action="store_true", help="check the checker on a fixture library")
    ap.add_argument("--cc", default=os.environ.get("CC", "gcc"), help="compiler for --selftest")
    args = ap.parse_args(argv)
    allow = re.compile(args.allow, re.IGNORECASE)
    if shutil.which(args.objdump) is None:
        print(f"error: {args.objdump} not found (Debian package binutils)", file=sys.stderr)
        return 2
    try:
        if args.selftest:
            return selftest(args.cc, args.objdump, allow)
        if not args.libs:
            ap.error("no libraries given")
        for lib in args.libs:
            if not lib.is_file():
                print(f"error: {lib} does not exist", file=sys.stderr)
                return 2
            if not has_symtab(lib, args.objdump):
                print(f"error: {lib} has no symbol table (stripped?): instructions cannot be "
                      "attributed to functions", file=sys.stderr)
                return 2
        n_bad, _ = report(args.libs, allow, args.objdump)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
