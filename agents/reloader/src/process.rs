//! Finding the process to signal in a shared process namespace (`shareProcessNamespace: true`)
//! and signalling it.
//!
//! By name: every process whose `/proc/<pid>/comm` (the kernel's 15-byte name) or the base name
//! of its first command-line word equals the name; of those, only the ones whose parent is not
//! itself a match, so nginx's master gets the signal and its workers do not. By pid file: the
//! number in the file, read again at each reload (the app may have restarted).
use std::{collections::HashSet, fs, path::Path};

/// Parses a signal name (`HUP`, `SIGHUP`, `hup`) or number.
pub fn parse_signal(s: &str) -> Option<i32> {
    let t = s.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = t.strip_prefix("SIG").unwrap_or(&t);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "KILL" => libc::SIGKILL,
        _ => return None,
    })
}

/// A process seen in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Proc {
    pid: i32,
    ppid: i32,
}

fn read_ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn name_matches(pid: i32, name: &str) -> bool {
    if let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) {
        let comm = comm.trim_end_matches('\n');
        // comm holds at most 15 bytes of the executable's name.
        let short = name.get(..name.len().min(15)).unwrap_or(name);
        if comm == name || (name.len() > 15 && comm == short) {
            return true;
        }
    }
    if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
        let first = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        let first = String::from_utf8_lossy(first);
        let prog = first.split_whitespace().next().unwrap_or_default();
        let base = prog.rsplit('/').next().unwrap_or_default();
        return base == name;
    }
    false
}

/// The processes named `name` whose parent is not also named `name`, excluding this process.
pub fn find_by_name(name: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let matches: Vec<Proc> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && name_matches(pid, name))
        .filter_map(|pid| {
            Some(Proc {
                pid,
                ppid: read_ppid(pid)?,
            })
        })
        .collect();
    roots(&matches)
}

fn roots(matches: &[Proc]) -> Vec<i32> {
    let pids: HashSet<i32> = matches.iter().map(|p| p.pid).collect();
    let mut out: Vec<i32> = matches
        .iter()
        .filter(|p| !pids.contains(&p.ppid))
        .map(|p| p.pid)
        .collect();
    out.sort_unstable();
    out
}

/// Reads a pid file: one positive number, surrounding whitespace allowed.
pub fn read_pidfile(path: &Path) -> Result<i32, String> {
    let text = fs::read_to_string(path)
        .map_err(|e| format!("cannot read pid file {}: {e}", path.display()))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            format!(
                "pid file {} holds {:?}, not a process id",
                path.display(),
                text.trim()
            )
        })
}

/// Sends `sig` to `pid`.
#[allow(unsafe_code)]
pub fn send(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("HUP"), Some(libc::SIGHUP));
        assert_eq!(parse_signal("sigusr1"), Some(libc::SIGUSR1));
        assert_eq!(parse_signal("15"), Some(15));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("RELOAD"), None);
    }

    #[test]
    fn only_processes_whose_parent_is_not_a_match() {
        // master 10 (parent 1) with workers 11, 12; an unrelated second master 20.
        let m = [
            Proc { pid: 11, ppid: 10 },
            Proc { pid: 10, ppid: 1 },
            Proc { pid: 12, ppid: 10 },
            Proc { pid: 20, ppid: 5 },
        ];
        assert_eq!(roots(&m), [10, 20]);
    }

    #[test]
    fn pidfiles() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nginx.pid");
        fs::write(&p, "1234\n").unwrap();
        assert_eq!(read_pidfile(&p), Ok(1234));
        fs::write(&p, "nope").unwrap();
        assert!(read_pidfile(&p).unwrap_err().contains("not a process id"));
        assert!(read_pidfile(&dir.path().join("missing"))
            .unwrap_err()
            .contains("cannot read"));
    }

    #[test]
    fn finds_a_child_by_name_but_never_itself() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let found = find_by_name("sleep");
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&(child.id() as i32)), "{found:?}");
        let me = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(!find_by_name(me.trim()).contains(&(std::process::id() as i32)));
    }
}
