//! memtree: the memory of a process and all its descendants, for bench/run.
//!
//!   memtree PID          prints `PSS_KIB RSS_KIB PROCESSES`
//!   memtree --pids PID   prints the tree's process ids, one a line (the root first)
//!
//! PSS (proportional set size, `Pss:` of /proc/PID/smaps_rollup) divides each shared page
//! among the processes that map it, so forked workers sharing their parent's pages are not
//! counted once per process; the sum over a tree is what the tree costs. When smaps_rollup
//! cannot be read the process's VmRSS (/proc/PID/status) stands in. RSS is summed beside it
//! for reference. A process that vanishes while being read counts as 0. Prints `0 0 0` if PID
//! is gone; exits 2 on a bad command line.

use std::collections::HashMap;
use std::fs;

fn field_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Every process's parent, from /proc/*/stat (the field after the command, which may itself
/// hold spaces and parentheses: hence the last ')').
fn parents() -> HashMap<u32, Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return children;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    children
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.first().is_some_and(|a| a == "--pids");
    if list {
        args.remove(0);
    }
    let root: u32 = match args.first().and_then(|s| s.parse().ok()) {
        Some(pid) if args.len() == 1 => pid,
        _ => {
            eprintln!("usage: memtree [--pids] PID");
            std::process::exit(2);
        }
    };
    if fs::metadata(format!("/proc/{root}")).is_err() {
        if !list {
            println!("0 0 0");
        }
        return;
    }
    let children = parents();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(kids) = children.get(&tree[i]) {
            tree.extend(kids);
        }
        i += 1;
    }
    if list {
        for pid in &tree {
            println!("{pid}");
        }
        return;
    }
    let (mut pss, mut rss, mut procs) = (0u64, 0u64, 0u64);
    for pid in &tree {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let Some(vm_rss) = field_kib(&status, "VmRSS:") else {
            continue;
        };
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        pss += field_kib(&rollup, "Pss:").unwrap_or(vm_rss);
        rss += vm_rss;
        procs += 1;
    }
    println!("{pss} {rss} {procs}");
}
