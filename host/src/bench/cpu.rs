//! CPU time of processes, from `/proc/<pid>/stat` (user plus system time
//! of every thread, in clock ticks), and the server PIDs `warren dev`
//! leaves in its directory.

use std::path::{Path, PathBuf};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, usually 100).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf takes an integer and reads no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// The CPU seconds (user + system, all threads) process `pid` has used.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path}: {e}; is process {pid} running?"))?;
    let ticks = parse_stat(&text)
        .ok_or_else(|| format!("{path} does not have the layout of /proc/PID/stat"))?;
    Ok(ticks as f64 / ticks_per_second())
}

/// This process's CPU seconds.
pub fn own_cpu_seconds() -> Result<f64, String> {
    cpu_seconds(std::process::id())
}

/// utime + stime, in ticks, from the text of `/proc/<pid>/stat`: fields 14
/// and 15, counted after the command name (which may hold spaces and
/// parentheses, so the count starts at its last `)`).
pub fn parse_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The PIDs `warren dev` wrote to `DIR/n1.pid`, `DIR/n2.pid`, ... (sorted
/// by node), checked to be running.
pub fn dev_pids(dir: &Path) -> Result<Vec<u32>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read the dev directory {}: {e}; give the directory `warren dev --dir` uses",
            dir.display()
        )
    })?;
    let mut files: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let id = name.to_str()?.strip_prefix('n')?.strip_suffix(".pid")?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{} holds no n*.pid files; give the directory `warren dev --dir` runs the cluster from",
            dir.display()
        ));
    }
    files
        .into_iter()
        .map(|(id, path)| {
            read_pid_file(&path, &format!("node n{id}"), "start the cluster with `warren dev`")
        })
        .collect()
}

/// The process id in the pid file `path`, checked to be running; errors
/// name `what` runs there and end with `start`, the next step.
pub fn read_pid_file(path: &Path, what: &str, start: &str) -> Result<u32, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}; {start}", path.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{} does not hold a process id; {start}", path.display()))?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!("{what} (pid {pid} from {}) is not running; {start}", path.display()));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let text =
            "4242 (warren (a) b) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat(text), Some(325));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(own_cpu_seconds().expect("own stat") >= 0.0);
    }
}
