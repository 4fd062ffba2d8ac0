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
        libc::SYS_fchownat,
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

/// Installs both filters on every thread of this process (and all it starts later). Sets
/// `no_new_privs` first, as an unprivileged filter requires.
pub fn install(pid: u32) -> Result<(), String> {
    for program in [clone3_filter()?, filter(pid)?] {
        seccompiler::apply_filter_all_threads(&program).map_err(|e| e.to_string())?;
    }
    Ok(())
}
