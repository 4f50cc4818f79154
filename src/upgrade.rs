//! The binary upgrade (nginx's `USR2`): the running master starts the binary again,
//! with the same command line and its listening sockets, and both serve until the
//! old one is told `WINCH` (its workers stop accepting and finish) and `QUIT`.
//!
//! How the sockets travel: nginx leaves them open across `execve` and names their
//! numbers in the `NGINX` environment variable; a Rust program without `unsafe` cannot
//! take ownership of a descriptor by its number. So the old master sends them over a
//! unix socket pair as `SCM_RIGHTS` messages, and that socket is the new process's
//! standard input; the `JUNCTION` environment variable says how many come. The new
//! process reads them before anything else and puts `/dev/null` on its standard input.
//! The sockets are the same ones (one open file description in both processes), so
//! the connections waiting in their accept queues are served by whichever process
//! accepts first, and none is lost when the old process closes its copies.
//!
//! The pid file, as nginx: renamed to `PID.oldbin` before the new binary starts; the
//! new master writes `PID` once it is ready; if the new binary exits while the old
//! master runs, `PID.oldbin` is renamed back.

use std::ffi::OsString;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The environment variable that tells the new binary how many sockets come on its
/// standard input.
pub(crate) const ENV: &str = "JUNCTION";

/// Descriptors per `SCM_RIGHTS` message (the kernel's limit is 253).
const PER_MESSAGE: usize = 64;

/// How to run this binary again: the program and its arguments, as started.
pub(crate) struct Exe {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Exe {
    /// Read at start-up: `argv[0]` when it names a path (made absolute against the
    /// directory the process started in), so a new binary installed at that path is
    /// the one started, else the executable the kernel ran (`/proc/self/exe` as it is
    /// now, before any new installation replaces the file).
    pub(crate) fn current() -> Exe {
        let mut argv = std::env::args_os();
        let arg0 = argv.next().map(PathBuf::from);
        let args = argv.collect();
        let program = match arg0 {
            Some(p) if p.components().count() > 1 || p.is_absolute() => {
                if p.is_absolute() {
                    p
                } else {
                    std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
                }
            }
            other => std::env::current_exe()
                .ok()
                .or(other)
                .unwrap_or_else(|| PathBuf::from("junction")),
        };
        Exe { program, args }
    }
}

/// `PID.oldbin`.
pub(crate) fn oldbin(pid_file: &Path) -> PathBuf {
    let mut s = pid_file.as_os_str().to_os_string();
    s.push(".oldbin");
    PathBuf::from(s)
}

/// The sockets the old binary passed (none when `JUNCTION` is not set), or why they
/// could not be read (to log once the error log is open).
pub(crate) fn take_inherited() -> (Vec<OwnedFd>, Option<String>) {
    let Some(want) = std::env::var_os(ENV) else {
        return (Vec::new(), None);
    };
    let want = want.to_string_lossy().trim().parse::<usize>().ok();
    let mut fds = Vec::new();
    let stdin = std::io::stdin();
    let err = loop {
        let mut byte = [0u8; 1];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(PER_MESSAGE))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            stdin.as_fd(),
            &mut [std::io::IoSliceMut::new(&mut byte)],
            &mut control,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        );
        match got {
            Ok(m) if m.bytes == 0 => break None,
            Ok(_) => {
                for msg in control.drain() {
                    if let rustix::net::RecvAncillaryMessage::ScmRights(it) = msg {
                        fds.extend(it);
                    }
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => break Some(format!("cannot read the inherited sockets ({e})")),
        }
    };
    // Standard input is /dev/null from here on, as for any daemon.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
    }
    let err = err.or_else(|| match want {
        Some(n) if n != fds.len() => Some(format!(
            "{ENV}={n} but {} sockets were inherited",
            fds.len()
        )),
        _ => None,
    });
    (fds, err)
}

/// A new binary's process, started by [`exec_new_binary`].
pub(crate) struct NewBinary {
    /// The process.
    pub(crate) child: tokio::process::Child,
    /// Its pid.
    pub(crate) pid: u32,
}

/// nginx's `ngx_exec_new_binary`: renames the pid file to `PID.oldbin` and starts the
/// binary again with the sockets. On failure the pid file is renamed back.
pub(crate) fn exec_new_binary(
    exe: &Exe,
    fds: &[BorrowedFd<'_>],
    pid_file: &Path,
) -> Result<NewBinary, String> {
    let old = oldbin(pid_file);
    std::fs::rename(pid_file, &old).map_err(|e| {
        format!(
            "rename() {} to {} failed ({e}) before executing new binary process \"{}\"",
            pid_file.display(),
            old.display(),
            exe.program.display()
        )
    })?;
    let rename_back = |why: String| {
        if let Err(e) = std::fs::rename(&old, pid_file) {
            return format!(
                "{why}; rename() {} back to {} failed ({e})",
                old.display(),
                pid_file.display()
            );
        }
        why
    };
    let stdin =
        send_sockets(fds).map_err(|e| rename_back(format!("cannot pass the sockets ({e})")))?;
    let mut cmd = tokio::process::Command::new(&exe.program);
    cmd.args(&exe.args)
        .env(ENV, fds.len().to_string())
        .stdin(std::process::Stdio::from(stdin));
    let child = cmd.spawn().map_err(|e| {
        rename_back(format!(
            "execve() failed while executing new binary process \"{}\" ({e})",
            exe.program.display()
        ))
    })?;
    let pid = child.id().unwrap_or(0);
    Ok(NewBinary { child, pid })
}

/// Writes every socket into one end of a new socket pair (then closed) and returns
/// the other end, for the new process's standard input.
fn send_sockets(fds: &[BorrowedFd<'_>]) -> std::io::Result<OwnedFd> {
    let (mine, theirs) = std::os::unix::net::UnixStream::pair()?;
    for chunk in fds.chunks(PER_MESSAGE) {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(PER_MESSAGE))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        if !control.push(rustix::net::SendAncillaryMessage::ScmRights(chunk)) {
            return Err(std::io::Error::other("control message too large"));
        }
        // One byte per message: the reader takes one message per read.
        rustix::net::sendmsg(
            &mine,
            &[IoSlice::new(b"s")],
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        )?;
    }
    drop(mine);
    Ok(OwnedFd::from(theirs))
}
