//! memtree: the memory and CPU time of a process and all its descendants, for bench/run.
//!
//!   memtree PID          prints `PSS_KIB RSS_KIB PROCESSES`
//!   memtree --pids PID   prints the tree's process ids, one a line (the root first)
//!   memtree --cpu PID    prints the CPU time the tree has used so far, user and system, in µs
//!
//! PSS (proportional set size, `Pss:` of /proc/PID/smaps_rollup) divides each shared page
//! among the processes that map it, so forked workers sharing their parent's pages are not
//! counted once per process; the sum over a tree is what the tree costs. When smaps_rollup
//! cannot be read the process's VmRSS (/proc/PID/status) stands in. RSS is summed beside it
//! for reference. A process that vanishes while being read counts as 0. Prints `0 0 0` if PID
//! is gone; exits 2 on a bad command line.
//!
//! CPU time is `utime + stime` of every process in the tree (all its threads, exited ones too)
//! plus `cutime + cstime`, what its children that have exited and been waited for used: so a
//! connection's child in the `process` model counts while it runs and after it is reaped. The
//! difference of two readings is what the tree spent between them. Prints 0 if PID is gone.

use std::collections::HashMap;
use std::fs;

/// The fields of /proc/PID/stat after the command (which may itself hold spaces and
/// parentheses: hence the last ')'); the first is the state, field 3 of proc(5).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // The state is a letter: it reads as 0, and the numbers keep their places.
    Some(after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
}

fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Every process's children, from the parent in /proc/*/stat (field 4).
fn parents() -> HashMap<u32, Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return children;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(&ppid) = stat_fields(pid).as_ref().and_then(|f| f.get(1)) {
            children.entry(ppid as u32).or_default().push(pid);
        }
    }
    children
}

#[derive(PartialEq)]
enum Mode {
    Memory,
    Pids,
    Cpu,
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("--pids") => Mode::Pids,
        Some("--cpu") => Mode::Cpu,
        _ => Mode::Memory,
    };
    if mode != Mode::Memory {
        args.remove(0);
    }
    let root: u32 = match args.first().and_then(|s| s.parse().ok()) {
        Some(pid) if args.len() == 1 => pid,
        _ => {
            eprintln!("usage: memtree [--pids | --cpu] PID");
            std::process::exit(2);
        }
    };
    if fs::metadata(format!("/proc/{root}")).is_err() {
        match mode {
            Mode::Memory => println!("0 0 0"),
            Mode::Cpu => println!("0"),
            Mode::Pids => {}
        }
        return;
    }
    let tree = tree(root);
    match mode {
        Mode::Pids => tree.iter().for_each(|pid| println!("{pid}")),
        Mode::Cpu => println!("{}", cpu_micros(&tree)),
        Mode::Memory => {
            let (pss, rss, procs) = memory(&tree);
            println!("{pss} {rss} {procs}");
        }
    }
}

/// `root` and its descendants, the root first.
fn tree(root: u32) -> Vec<u32> {
    let children = parents();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(kids) = children.get(&tree[i]) {
            tree.extend(kids);
        }
        i += 1;
    }
    tree
}

/// PSS and RSS summed (KiB), and how many processes were read.
fn memory(tree: &[u32]) -> (u64, u64, u64) {
    let (mut pss, mut rss, mut procs) = (0u64, 0u64, 0u64);
    for pid in tree {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let Some(vm_rss) = field_kib(&status, "VmRSS:") else {
            continue;
        };
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        pss += field_kib(&rollup, "Pss:").unwrap_or(vm_rss);
        rss += vm_rss;
        procs += 1;
    }
    (pss, rss, procs)
}

/// utime, stime, cutime and cstime (fields 14-17 of proc(5)) summed over the tree, in µs.
fn cpu_micros(tree: &[u32]) -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = tree
        .iter()
        .filter_map(|pid| stat_fields(*pid))
        .map(|f| f.get(11..15).map_or(0, |t| t.iter().sum()))
        .sum();
    ticks * 1_000_000 / ticks_per_sec
}
