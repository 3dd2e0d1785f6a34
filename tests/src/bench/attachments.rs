//! Attachments end to end with every process real: `lienthong send` (the clerk's CLI) to
//! Phong Dụ's node, which forwards to Tiên Yên's node, both `lienthong-node` processes, so
//! the peak memory of each is read from `/proc`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use pki::AgencyCode;

use super::measure::cpu_of_pid;
use crate::cli::{Cli, add_profile, clerk_shell};
use crate::hostile::Memory;
use crate::network::{NetOptions, NodeProcess, TestNet, only, topology};

const PHONG_DU: &str = "000.01.41.H49";
const TIEN_YEN: &str = "000.00.41.H49";

/// One attachment sent once.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Attachment bytes.
    pub bytes: u64,
    /// From starting `lienthong send` until it exits (the first node holds the document).
    pub clerk: Duration,
    /// From starting `lienthong send` until the next node has stored the document.
    pub end_to_end: Duration,
    /// Peak resident memory, MiB, of the CLI, the sending node and the receiving node.
    pub peak_rss_mib: [f64; 3],
    /// CPU time (user + system) the CLI, the sending node and the receiving node spent on
    /// it, seconds; the nodes' from the start until the next node stored it.
    pub cpu_s: [f64; 3],
}

impl Transfer {
    /// End-to-end MB/s (10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.end_to_end.as_secs_f64()
    }

    /// Clerk → first node MB/s (10^6 bytes).
    pub fn clerk_mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.clerk.as_secs_f64()
    }
}

/// Two node processes and a clerk's CLI profile, ready to send.
pub struct Pair {
    net: TestNet,
    sender: NodeProcess,
    receiver: NodeProcess,
    clerk: Cli,
    receiver_store: node::storage::Store,
    number: u32,
}

impl Pair {
    /// Starts both nodes as processes, with attachments of up to 2 GiB allowed.
    pub async fn start() -> Pair {
        let mut options = NetOptions::default();
        options.extra_config.push_str("\n[limits]\nmax_attachment_bytes = \"2GiB\"\nmax_document_bytes = \"2GiB\"\n");
        let mut net = TestNet::prepare(only(&topology("quang-ninh-2024"), &[PHONG_DU, TIEN_YEN]), options);
        let sender = net.spawn_process(&PHONG_DU.parse().unwrap());
        let receiver = net.spawn_process(&TIEN_YEN.parse().unwrap());
        net.wait_ready(PHONG_DU).await.close().await;
        net.wait_ready(TIEN_YEN).await.close().await;
        let clerk = clerk_shell();
        add_profile(&clerk, &net, "phong-du", PHONG_DU);
        let receiver_store = net.open_store(&TIEN_YEN.parse::<AgencyCode>().unwrap()).await;
        Pair { net, sender, receiver, clerk, receiver_store, number: 0 }
    }

    /// Sends one document with an attachment of `bytes` and waits until the next node has
    /// stored it.
    pub async fn send(&mut self, bytes: u64) -> Transfer {
        let file = self.clerk.path(&format!("attachment-{bytes}.pdf"));
        if !file.exists() {
            write_attachment(&file, bytes);
        }
        self.number += 1;
        for pid in [self.sender.child.id(), self.receiver.child.id()] {
            Memory::reset_peak(pid);
        }
        let nodes_cpu = || [self.sender.child.id(), self.receiver.child.id()].map(cpu_of_pid);
        let cpu_before = nodes_cpu();
        let start = Instant::now();
        let (stdout, cli_peak, cli_cpu) = {
            let program = crate::bin("lienthong");
            let dir = self.clerk.dir.path().to_owned();
            let args = send_args(self.number, &file);
            let envs = self.clerk.envs().to_vec();
            tokio::task::spawn_blocking(move || run_watching_memory(&program, &dir, &args, &envs)).await.unwrap()
        };
        let clerk = start.elapsed();
        let id = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Sent "))
            .unwrap_or_else(|| panic!("no id in {stdout}"))
            .trim()
            .to_owned();
        while self.receiver_store.document_by_id(&id).await.unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(900), "{id} did not reach Tiên Yên in 15 minutes");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let end_to_end = start.elapsed();
        let cpu_after = nodes_cpu();
        let peak = |pid: u32| Memory::of(pid).hwm_mib();
        let node_cpu = |i: usize| cpu_after[i].saturating_sub(cpu_before[i]).as_secs_f64();
        Transfer {
            bytes,
            clerk,
            end_to_end,
            peak_rss_mib: [cli_peak, peak(self.sender.child.id()), peak(self.receiver.child.id())],
            cpu_s: [cli_cpu.as_secs_f64(), node_cpu(0), node_cpu(1)],
        }
    }

    /// Stops both nodes.
    pub async fn stop(self) {
        self.receiver_store.close().await;
        drop(self.sender);
        drop(self.receiver);
        drop(self.net);
    }
}

fn send_args(number: u32, file: &Path) -> Vec<String> {
    let mut args: Vec<String> =
        ["--profile", "phong-du", "send", "--to", TIEN_YEN, "--number"].iter().map(|s| (*s).to_owned()).collect();
    args.push(number.to_string());
    for a in ["--notation", "UBND-VP", "--place", "Phong Dụ", "--subject", "Hồ sơ quy hoạch (đo băng thông)"]
    {
        args.push(a.to_owned());
    }
    args.push("--attach".to_owned());
    args.push(file.to_str().unwrap().to_owned());
    args.push("--passphrase-env".to_owned());
    args.push("CHU_TICH_PASS".to_owned());
    args
}

/// Runs a program to its end, reading its peak resident memory (VmHWM) and its CPU time every
/// 10 ms; returns its stdout, the last peak read (MiB) and the last CPU time read (the one of
/// the exited process, not yet waited for, when the last read is late enough).
fn run_watching_memory(
    program: &Path,
    dir: &Path,
    args: &[String],
    envs: &[(String, String)],
) -> (String, f64, Duration) {
    let mut child = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0.0f64;
    let mut cpu = Duration::ZERO;
    while child.try_wait().unwrap().is_none() {
        // A process that has just exited is a zombie until waited for: its status has no
        // memory lines then, and reads as 0; its CPU times stay.
        peak = peak.max(Memory::of(pid).hwm_mib());
        cpu = cpu.max(cpu_of_pid(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "lienthong send failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), peak, cpu)
}

/// A PDF-headed file of `bytes` of incompressible-looking data.
fn write_attachment(path: &Path, bytes: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    block[..9].copy_from_slice(b"%PDF-1.4\n");
    let mut left = bytes;
    let mut round = 0u8;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        left -= n as u64;
        round = round.wrapping_add(1);
        block[9] = round;
    }
    file.flush().unwrap();
}
