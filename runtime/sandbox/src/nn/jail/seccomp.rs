//! The inference worker's system-call filter, installed after ONNX Runtime's library is loaded
//! and before any graph is: from then on the worker cannot open a file (so no graph can read
//! external data, `/proc/<host>/mem` or a key), create or connect a socket, start a program,
//! trace or signal another process, or reach the kernel's larger attack surfaces (io_uring,
//! bpf, user namespaces).
//!
//! It is a deny list, answering `EPERM`, rather than an allow list: ONNX Runtime's kernels and
//! thread pools use a wide, version-dependent set of calls (futexes, memory mapping, affinity),
//! and a call it needs that an allow list forgot would kill the worker on some graph. What is
//! denied is every call that reaches a name outside the process (a path, an address, a pid)
//! and every call that makes a new capability. `EPERM` rather than a kill keeps ONNX Runtime's
//! own error paths (it reports a failed open as an error status), so a refused graph is a
//! message, not a crash.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// ioctl requests that set a descriptor's signal owner (linux/sockios.h), which libc does not
/// name.
const FIOSETOWN: u64 = 0x8901;
const SIOCSPGRP: u64 = 0x8902;
/// fcntl commands libc does not name on every target (asm-generic/fcntl.h).
const F_SETSIG: u64 = 10;
const F_SETOWN_EX: u64 = 15;

/// Calls denied whatever their arguments.
fn always_denied() -> Vec<i64> {
    let mut calls = vec![
        // Files by name.
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_readlinkat,
        libc::SYS_mknodat,
        libc::SYS_linkat,
        libc::SYS_symlinkat,
        libc::SYS_unlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_mkdirat,
        libc::SYS_fchmodat,
        libc::SYS_fchmodat2,
        libc::SYS_fchownat,
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_getxattr,
        libc::SYS_lgetxattr,
        libc::SYS_listxattr,
        libc::SYS_llistxattr,
        libc::SYS_removexattr,
        libc::SYS_lremovexattr,
        libc::SYS_fremovexattr,
        libc::SYS_statfs,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fspick,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_move_mount,
        libc::SYS_mount_setattr,
        libc::SYS_mq_open,
        libc::SYS_mq_unlink,
        // Other processes' memory and the host's: System V IPC, NUMA moves, robust lists.
        libc::SYS_shmget,
        libc::SYS_shmat,
        libc::SYS_shmctl,
        libc::SYS_msgget,
        libc::SYS_msgsnd,
        libc::SYS_msgrcv,
        libc::SYS_msgctl,
        libc::SYS_semget,
        libc::SYS_semop,
        libc::SYS_semctl,
        libc::SYS_semtimedop,
        libc::SYS_move_pages,
        libc::SYS_migrate_pages,
        libc::SYS_get_robust_list,
        libc::SYS_process_madvise,
        libc::SYS_process_mrelease,
        // Sessions and process groups: the worker stays in the host's.
        libc::SYS_setsid,
        libc::SYS_setpgid,
        libc::SYS_syslog,
        libc::SYS_truncate,
        libc::SYS_utimensat,
        libc::SYS_chdir,
        libc::SYS_chroot,
        libc::SYS_inotify_add_watch,
        libc::SYS_fanotify_init,
        libc::SYS_memfd_secret,
        // The network.
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        // Programs and other processes.
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_getfd,
        libc::SYS_pidfd_send_signal,
        libc::SYS_kcmp,
        // Privilege and namespaces.
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_setgroups,
        libc::SYS_setfsuid,
        libc::SYS_setfsgid,
        libc::SYS_capset,
        libc::SYS_personality,
        // Large kernel surfaces a model never needs.
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        libc::SYS_open,
        libc::SYS_creat,
        libc::SYS_access,
        libc::SYS_readlink,
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_mknod,
        libc::SYS_link,
        libc::SYS_symlink,
        libc::SYS_unlink,
        libc::SYS_rename,
        libc::SYS_mkdir,
        libc::SYS_rmdir,
        libc::SYS_chmod,
        libc::SYS_chown,
        libc::SYS_lchown,
        libc::SYS_utime,
        libc::SYS_utimes,
        libc::SYS_futimesat,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_uselib,
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_modify_ldt,
    ]);
    calls
}

/// Builds the filter for a worker whose process id is `pid`.
pub fn filter(pid: u32) -> Result<BpfProgram, String> {
    let error = |e: seccompiler::BackendError| e.to_string();
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = always_denied()
        .into_iter()
        .map(|call| (call, Vec::new()))
        .collect();

    // Signals only to itself: `abort()` raises SIGABRT through tgkill(own pid), but a signal to
    // the host (same user) would be a way out.
    let not_self = |arg: u8| -> Result<Vec<SeccompRule>, String> {
        Ok(vec![
            SeccompRule::new(vec![
                SeccompCondition::new(
                    arg,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    u64::from(pid),
                )
                .map_err(error)?,
            ])
            .map_err(error)?,
        ])
    };
    rules.insert(libc::SYS_kill, not_self(0)?);
    rules.insert(libc::SYS_tgkill, not_self(0)?);
    rules.insert(libc::SYS_rt_sigqueueinfo, not_self(0)?);
    rules.insert(libc::SYS_rt_tgsigqueueinfo, not_self(0)?);

    // Calls that name a process: allowed on this one (0 or its own pid) only. Another process of
    // the same user (the host) could otherwise have its limits, priority or CPUs changed.
    let other_process = |arg: u8| -> Result<Vec<SeccompRule>, String> {
        let condition = |value: u64| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, value)
                .map_err(error)
        };
        Ok(vec![
            SeccompRule::new(vec![condition(0)?, condition(u64::from(pid))?]).map_err(error)?,
        ])
    };
    rules.insert(libc::SYS_prlimit64, other_process(0)?);
    rules.insert(libc::SYS_sched_setaffinity, other_process(0)?);
    rules.insert(libc::SYS_sched_setscheduler, other_process(0)?);
    rules.insert(libc::SYS_sched_setparam, other_process(0)?);
    rules.insert(libc::SYS_sched_setattr, other_process(0)?);
    // setpriority and ioprio_set name a process, a process group (the host's) or a user: only
    // a process, and only this one.
    let other_target = |kind_of_one_process: u64| -> Result<Vec<SeccompRule>, String> {
        let mut rules = other_process(1)?;
        rules.push(
            SeccompRule::new(vec![
                SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    kind_of_one_process,
                )
                .map_err(error)?,
            ])
            .map_err(error)?,
        );
        Ok(rules)
    };
    rules.insert(
        libc::SYS_setpriority,
        other_target(libc::PRIO_PROCESS as u64)?,
    );
    // IOPRIO_WHO_PROCESS (linux/ioprio.h).
    rules.insert(libc::SYS_ioprio_set, other_target(1)?);

    // Signals by proxy: a descriptor's owner (F_SETOWN, F_SETOWN_EX, FIOSETOWN, SIOCSPGRP) is
    // sent a signal of the caller's choice (F_SETSIG) when it becomes ready (O_ASYNC), which
    // would reach the host without a kill call.
    let equals = |arg: u8, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value).map_err(error)
    };
    let fcntl_rules = vec![
        SeccompRule::new(vec![equals(1, libc::F_SETOWN as u64)?]).map_err(error)?,
        SeccompRule::new(vec![equals(1, F_SETOWN_EX)?]).map_err(error)?,
        SeccompRule::new(vec![equals(1, F_SETSIG)?]).map_err(error)?,
        SeccompRule::new(vec![
            equals(1, libc::F_SETFL as u64)?,
            SeccompCondition::new(
                2,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(libc::O_ASYNC as u64),
                libc::O_ASYNC as u64,
            )
            .map_err(error)?,
        ])
        .map_err(error)?,
    ];
    rules.insert(libc::SYS_fcntl, fcntl_rules);
    rules.insert(
        libc::SYS_ioctl,
        vec![
            SeccompRule::new(vec![equals(1, FIOSETOWN)?]).map_err(error)?,
            SeccompRule::new(vec![equals(1, SIOCSPGRP)?]).map_err(error)?,
            SeccompRule::new(vec![equals(1, libc::FIOASYNC)?]).map_err(error)?,
            SeccompRule::new(vec![equals(1, libc::TIOCSTI)?]).map_err(error)?,
        ],
    );
    // The worker keeps dying with the host and stays undumpable.
    rules.insert(
        libc::SYS_prctl,
        vec![
            SeccompRule::new(vec![equals(0, libc::PR_SET_PDEATHSIG as u64)?]).map_err(error)?,
            SeccompRule::new(vec![equals(0, libc::PR_SET_DUMPABLE as u64)?]).map_err(error)?,
            SeccompRule::new(vec![equals(0, libc::PR_SET_PTRACER as u64)?]).map_err(error)?,
        ],
    );
    // The tensor region is sealed against shrinking; no other file may change size either.
    rules.insert(libc::SYS_ftruncate, Vec::new());
    rules.insert(libc::SYS_fallocate, Vec::new());
    // tkill names a thread id, which cannot be checked against the process: no caller needs it.
    rules.insert(libc::SYS_tkill, Vec::new());

    // Metadata by name: allowed only on an open descriptor (`fstat` is `newfstatat(fd, "",
    // AT_EMPTY_PATH)` in current glibc), never on a path.
    let path_lookup = |flags_arg: u8| -> Result<Vec<SeccompRule>, String> {
        Ok(vec![
            SeccompRule::new(vec![
                SeccompCondition::new(
                    flags_arg,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(libc::AT_EMPTY_PATH as u64),
                    0,
                )
                .map_err(error)?,
            ])
            .map_err(error)?,
        ])
    };
    rules.insert(libc::SYS_newfstatat, path_lookup(3)?);
    rules.insert(libc::SYS_statx, path_lookup(2)?);

    // A new process (clone without CLONE_THREAD) could escape the filter's accounting of this
    // process; threads (ONNX Runtime's pools) are allowed.
    rules.insert(
        libc::SYS_clone,
        vec![
            SeccompRule::new(vec![
                SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
                    0,
                )
                .map_err(error)?,
            ])
            .map_err(error)?,
        ],
    );
    program(rules, libc::EPERM)
}

/// clone3 passes its flags in memory, out of the filter's sight, so it is refused as if the
/// kernel had no such call (`ENOSYS`): glibc then starts threads with `clone`, which the main
/// filter checks. A second filter, because one filter answers one errno.
fn clone3_filter() -> Result<BpfProgram, String> {
    program(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        libc::ENOSYS,
    )
}

fn program(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, String> {
    let arch = if cfg!(target_arch = "x86_64") {
        TargetArch::x86_64
    } else if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else {
        return Err("the inference jail's filter supports x86_64 and aarch64 only".into());
    };
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

/// The x32 ABI (system call numbers with bit 30 set) shares x86_64's audit architecture, so the
/// deny list's exact numbers would not match its calls: every x32 call is refused outright, by a
/// filter written out instruction by instruction (seccompiler compares numbers only for
/// equality).
#[cfg(target_arch = "x86_64")]
fn x32_filter() -> BpfProgram {
    use seccompiler::sock_filter;
    const LOAD_WORD: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
    const JUMP_IF_AT_LEAST: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
    const RETURN: u16 = 0x06; // BPF_RET | BPF_K
    const ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    const ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let at = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.nr is at offset 0.
        at(LOAD_WORD, 0, 0, 0),
        at(JUMP_IF_AT_LEAST, 0, 1, X32_SYSCALL_BIT),
        at(RETURN, 0, 0, ERRNO | libc::ENOSYS as u32),
        at(RETURN, 0, 0, ALLOW),
    ]
}

/// Installs the filters on every thread of this process (and all it starts later). Sets
/// `no_new_privs` first, as an unprivileged filter requires.
pub fn install(pid: u32) -> Result<(), String> {
    let mut programs = vec![clone3_filter()?, filter(pid)?];
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_filter());
    for program in programs {
        seccompiler::apply_filter_all_threads(&program).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Runs `probe` in a forked child behind the filters and returns its exit code. The
    /// filters are built before the fork, so the child only makes system calls.
    fn behind_the_filter(probe: fn(u32) -> i32) -> i32 {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() } as u32;
        // SAFETY: the child makes only raw system calls (no allocation, no locks) and leaves
        // with _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork failed");
        if child == 0 {
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() } as u32;
            let programs = match (clone3_filter(), filter(pid)) {
                (Ok(a), Ok(b)) => [a, b, x32_filter()],
                _ => unsafe { libc::_exit(100) },
            };
            for program in &programs {
                if seccompiler::apply_filter_all_threads(program).is_err() {
                    // SAFETY: leaving the child.
                    unsafe { libc::_exit(101) };
                }
            }
            let code = probe(parent);
            // SAFETY: leaving the child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "the probe died: {status:#x}");
        libc::WEXITSTATUS(status)
    }

    /// 0 when the call failed with `errno`, 1 when it succeeded, 2 on another error.
    fn refused(result: libc::c_long, errno: i32) -> i32 {
        // SAFETY: reading this thread's errno.
        let error = unsafe { *libc::__errno_location() };
        match result {
            -1 if error == errno => 0,
            -1 => 2,
            _ => 1,
        }
    }

    #[test]
    fn files_sockets_exec_and_other_processes_are_refused() {
        let probe: fn(u32) -> i32 = |parent| {
            // SAFETY (every call): raw system calls with valid, constant arguments.
            unsafe {
                let checks = [
                    refused(
                        libc::syscall(
                            libc::SYS_openat,
                            libc::AT_FDCWD,
                            c"/etc/hostname".as_ptr(),
                            libc::O_RDONLY,
                        ),
                        libc::EPERM,
                    ),
                    refused(
                        libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0),
                        libc::EPERM,
                    ),
                    refused(libc::syscall(libc::SYS_kill, parent, 0), libc::EPERM),
                    refused(
                        libc::syscall(libc::SYS_fcntl, 1, libc::F_SETOWN, parent),
                        libc::EPERM,
                    ),
                    refused(
                        libc::syscall(libc::SYS_prlimit64, parent, libc::RLIMIT_NOFILE, 0, 0),
                        libc::EPERM,
                    ),
                    refused(
                        libc::syscall(libc::SYS_execve, c"/bin/true".as_ptr(), 0, 0),
                        libc::EPERM,
                    ),
                    refused(libc::syscall(libc::SYS_clone3, 0, 0), libc::ENOSYS),
                    refused(
                        libc::syscall(libc::SYS_setpriority, libc::PRIO_PGRP, 0, 0),
                        libc::EPERM,
                    ),
                    // x32's openat.
                    refused(
                        libc::syscall(
                            0x4000_0000 | libc::SYS_openat,
                            libc::AT_FDCWD,
                            c"/etc/hostname".as_ptr(),
                            0,
                        ),
                        libc::ENOSYS,
                    ),
                ];
                // The first refusal that did not happen, by its place (1-based), or 0.
                match checks.iter().position(|&c| c != 0) {
                    Some(i) => 10 + i as i32,
                    None => {
                        // What the worker needs still works: its own limits, time, memory.
                        let own = libc::syscall(libc::SYS_prlimit64, 0, libc::RLIMIT_NOFILE, 0, 0);
                        let mut now = libc::timespec {
                            tv_sec: 0,
                            tv_nsec: 0,
                        };
                        let time = libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
                        if own != 0 || time != 0 { 3 } else { 0 }
                    }
                }
            }
        };
        assert_eq!(
            behind_the_filter(probe),
            0,
            "10+n: check n was not refused; 3: a needed call was"
        );
    }
}
