"""Seccomp BPF filters for Python sandboxes, assembled in pure Python.

Two programs, both x86_64 only (any other architecture, and the x32 ABI, is killed):

* ``bwrap_filter()`` is handed to ``bwrap --seccomp FD``. bwrap installs it right before it
  ``execve``\\ s the interpreter, so it cannot forbid ``execve`` itself; it forbids sockets,
  ``ptrace``, namespace/mount/module/keyring syscalls, ``io_uring`` (which would bypass
  seccomp), ``bpf``, ``perf_event_open`` and friends.
* ``exec_filter()`` is installed by the sandbox host itself (``prctl(PR_SET_SECCOMP)``) once
  the interpreter is up and before any user code: it forbids ``execve``/``execveat`` and
  every process-creating ``clone`` (threads, i.e. ``CLONE_THREAD``, stay allowed; ``clone3``
  answers ``ENOSYS`` so libc falls back to the inspectable ``clone``), and
  ``prctl(PR_SET_PDEATHSIG)`` (the sandbox must die with its parent).

Forbidden syscalls kill the whole process (``SECCOMP_RET_KILL_PROCESS``): the parent sees
``SIGSYS`` and classifies the run as a sandbox violation. No libseccomp needed (ADR 0101-b).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import cache

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_KILL_PROCESS = 0x80000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
ENOSYS = 38
AF_UNIX = 1
CLONE_THREAD = 0x00010000

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG0_LO = 16  # args[0] low 32 bits (little endian)

# x86_64 syscall numbers forbidden for every sandboxed process.
DENY_ALWAYS: dict[str, int] = {
    "socket": 41,
    "connect": 42,
    "accept": 43,
    "bind": 49,
    "listen": 50,
    "accept4": 288,
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "personality": 135,
    "ustat": 136,
    "sysfs": 139,
    "vhangup": 153,
    "pivot_root": 155,
    "_sysctl": 156,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "create_module": 174,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "move_pages": 279,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
}
NR_SOCKETPAIR = 53
NR_CLONE = 56
NR_CLONE3 = 435
NR_PRCTL = 157
PR_SET_PDEATHSIG = 1
DENY_AFTER_BOOT: dict[str, int] = {"fork": 57, "vfork": 58, "execve": 59, "execveat": 322}


@dataclass
class _Insn:
    code: int
    k: int
    jt: str | int = 0  # label name or relative offset
    jf: str | int = 0


class _Asm:
    """A tiny BPF assembler with forward labels (all our jumps go forward)."""

    def __init__(self) -> None:
        self.insns: list[_Insn] = []
        self.labels: dict[str, int] = {}

    def ld(self, offset: int) -> None:
        self.insns.append(_Insn(_LD_W_ABS, offset))

    def jump(self, code: int, k: int, jt: str | int, jf: str | int) -> None:
        self.insns.append(_Insn(code, k, jt, jf))

    def ret(self, value: int) -> None:
        self.insns.append(_Insn(_RET_K, value))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, insn in enumerate(self.insns):
            jt = self._offset(pc, insn.jt)
            jf = self._offset(pc, insn.jf)
            out += struct.pack("<HBBI", insn.code, jt, jf, insn.k & 0xFFFFFFFF)
        return bytes(out)

    def _offset(self, pc: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        rel = self.labels[target] - pc - 1
        if not 0 <= rel <= 255:
            raise ValueError(f"BPF jump to {target} out of range ({rel})")
        return rel


def _prologue(asm: _Asm) -> None:
    asm.ld(_OFF_ARCH)
    asm.jump(_JEQ_K, AUDIT_ARCH_X86_64, 0, "kill")
    asm.ld(_OFF_NR)
    asm.jump(_JGE_K, X32_SYSCALL_BIT, "kill", 0)


def _epilogue(asm: _Asm) -> None:
    asm.label("allow")
    asm.ret(RET_ALLOW)
    asm.label("kill")
    asm.ret(RET_KILL_PROCESS)


@cache
def bwrap_filter() -> bytes:
    """The filter given to bwrap: no sockets (except an AF_UNIX socketpair), no escapes."""
    asm = _Asm()
    _prologue(asm)
    for nr in sorted(DENY_ALWAYS.values()):
        asm.jump(_JEQ_K, nr, "kill", 0)
    # asyncio creates its self-pipe with socketpair(AF_UNIX); nothing else may pair sockets.
    asm.jump(_JEQ_K, NR_SOCKETPAIR, 0, "allow")
    asm.ld(_OFF_ARG0_LO)
    asm.jump(_JEQ_K, AF_UNIX, "allow", "kill")
    _epilogue(asm)
    return asm.assemble()


@cache
def exec_filter() -> bytes:
    """The filter the host installs after start-up: no new programs, no new processes."""
    asm = _Asm()
    _prologue(asm)
    for nr in sorted(DENY_AFTER_BOOT.values()):
        asm.jump(_JEQ_K, nr, "kill", 0)
    asm.jump(_JEQ_K, NR_CLONE3, "enosys", 0)
    asm.jump(_JEQ_K, NR_PRCTL, "prctl", 0)
    asm.jump(_JEQ_K, NR_CLONE, 0, "allow")
    asm.ld(_OFF_ARG0_LO)  # clone(flags, ...): only threads may be created
    asm.jump(_JSET_K, CLONE_THREAD, "allow", "kill")
    # Clearing the parent-death signal would let the sandbox outlive a dead worker.
    asm.label("prctl")
    asm.ld(_OFF_ARG0_LO)
    asm.jump(_JEQ_K, PR_SET_PDEATHSIG, "kill", "allow")
    asm.label("enosys")
    asm.ret(RET_ERRNO | ENOSYS)
    _epilogue(asm)
    return asm.assemble()


def filter_fd(program: bytes) -> int:
    """A readable fd (memfd, offset 0) holding ``program``, for ``bwrap --seccomp FD``.

    bwrap reads the fd to its end once per spawn, so every spawn needs its own fd.
    """
    fd = os.memfd_create("treadle-seccomp", 0)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
