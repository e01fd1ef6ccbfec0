//! `inferwatch simulate`: a real miner-shaped CPU load, and the GPU feedback files.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

use super::Failure;

/// Size of each thread's scratchpad, as RandomX-style CPU miners use (2 MiB).
const SCRATCHPAD_BYTES: usize = 2 << 20;

/// Options of `inferwatch simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    #[command(subcommand)]
    command: SimulateCommand,
}

#[derive(Debug, Subcommand)]
enum SimulateCommand {
    /// Put a miner-shaped load on the CPU: each thread hashes random reads and writes over
    /// its own 2 MiB scratchpad until the duration ends or the process is stopped.
    Miner(MinerArgs),
    /// Write gpu_load_fb and gpu_inference_fb, the files the reference setup uses to
    /// simulate a GPU and its inference time.
    Feedback(FeedbackArgs),
}

#[derive(Debug, Args)]
struct MinerArgs {
    /// Hashing threads; the default is one per core.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Nice value of the threads, from -20 (favored) to 19 (yields to everything).
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    nice: i32,
    /// Stop after this many seconds; without it, run until stopped.
    #[arg(long, value_name = "SECS", value_parser = super::run::parse_seconds)]
    duration: Option<Duration>,
    /// Process name shown in /proc/PID/comm and by ps (at most 15 bytes are kept).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

#[derive(Debug, Args)]
struct FeedbackArgs {
    /// GPU load in percent, written to gpu_load_fb.
    #[arg(long, value_name = "PERCENT", value_parser = parse_number)]
    gpu_load: f64,
    /// Inference time in milliseconds, written to gpu_inference_fb.
    #[arg(long, value_name = "MS", value_parser = parse_number)]
    inference_time: f64,
    /// Folder of the two files.
    #[arg(long, value_name = "DIR", default_value = "/var")]
    dir: PathBuf,
}

fn parse_number(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a non-negative number")),
    }
}

pub(crate) fn run(args: SimulateArgs) -> Result<(), Failure> {
    match args.command {
        SimulateCommand::Miner(args) => miner(&args),
        SimulateCommand::Feedback(args) => feedback(&args),
    }
}

fn miner(args: &MinerArgs) -> Result<(), Failure> {
    if let Some(name) = &args.name {
        set_process_name(name)?;
    }
    if args.nice != 0 {
        // Linux keeps the nice value per thread, and new threads inherit it from the
        // thread that creates them, so this is set before the hashing threads start.
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, args.nice) };
        if result != 0 {
            return Err(Failure::runtime(format!(
                "failed to set nice value {}: {} (negative values need CAP_SYS_NICE)",
                args.nice,
                std::io::Error::last_os_error()
            )));
        }
    }
    let threads = args
        .threads
        .map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let stop = Arc::new(AtomicBool::new(false));
    let hashes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|index| {
            let stop = stop.clone();
            let hashes = hashes.clone();
            std::thread::Builder::new()
                .spawn(move || hash_loop(index as u64, &stop, &hashes))
                .map_err(|e| {
                    Failure::runtime(format!("failed to start hashing thread {index}: {e}"))
                })
        })
        .collect::<Result<_, _>>()?;

    eprintln!(
        "simulated miner: pid {}, {threads} threads, nice {}, {} MiB scratchpad each",
        std::process::id(),
        args.nice,
        SCRATCHPAD_BYTES >> 20
    );
    match args.duration {
        Some(duration) => std::thread::sleep(duration),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }

    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = hashes.load(Ordering::Relaxed);
    eprintln!(
        "simulated miner: {total} hashes in {elapsed:.1} s ({:.0}/s)",
        total as f64 / elapsed
    );
    Ok(())
}

fn set_process_name(name: &str) -> Result<(), Failure> {
    let name = CString::new(name)
        .map_err(|_| Failure::input(format!("--name {name:?} contains a NUL byte")))?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of which the kernel copies at most
    // 16 bytes; `name` lives until the call returns.
    let result = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    if result != 0 {
        return Err(Failure::runtime(format!(
            "failed to set the process name: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Hashes a random walk over a 2 MiB scratchpad. Each step reads 64 bytes at an address
/// taken from the last hash, hashes them with the state, and writes the result at another
/// address, so memory latency bounds the load as much as arithmetic does.
fn hash_loop(seed: u64, stop: &AtomicBool, hashes: &AtomicU64) {
    let mut scratchpad = vec![0u8; SCRATCHPAD_BYTES];
    let mut state: [u8; 32] = Sha256::digest(seed.to_le_bytes()).into();
    for chunk in scratchpad.chunks_mut(32) {
        state = Sha256::digest(state).into();
        chunk.copy_from_slice(&state[..chunk.len()]);
    }
    let lines = (SCRATCHPAD_BYTES / 64) as u64;
    let mut count = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..1024 {
            let read = (u64::from_le_bytes(state[..8].try_into().unwrap_or_default()) % lines)
                as usize
                * 64;
            let mut hasher = Sha256::new();
            hasher.update(state);
            hasher.update(&scratchpad[read..read + 64]);
            state = hasher.finalize().into();
            let write = (u64::from_le_bytes(state[8..16].try_into().unwrap_or_default()) % lines)
                as usize
                * 64;
            scratchpad[write..write + 32].copy_from_slice(&state);
        }
        count += 1024;
        hashes.fetch_add(1024, Ordering::Relaxed);
    }
    std::hint::black_box((count, &scratchpad));
}

fn feedback(args: &FeedbackArgs) -> Result<(), Failure> {
    write_number(&args.dir.join("gpu_load_fb"), args.gpu_load)?;
    write_number(&args.dir.join("gpu_inference_fb"), args.inference_time)?;
    println!(
        "wrote gpu_load_fb = {} and gpu_inference_fb = {} in {}",
        args.gpu_load,
        args.inference_time,
        args.dir.display()
    );
    Ok(())
}

/// Writes `value` through a temporary file and a rename, so a reader never sees a half
/// written number.
fn write_number(path: &Path, value: f64) -> Result<(), Failure> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, format!("{value}\n"))
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            Failure::runtime(format!(
                "failed to write {}: {e} (choose a writable folder with --dir)",
                path.display()
            ))
        })
}
