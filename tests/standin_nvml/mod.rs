//! A stand-in for the NVIDIA driver library, built with gcc, for tests on machines without
//! an NVIDIA GPU. It exports the NVML functions the sampler calls and returns scripted
//! values; nvml-wrapper loads it through its library-path option like the real library.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The stand-in driver: two GPUs. GPU 1 runs this process (100 MiB) and pid 4242 (300 MiB);
/// GPU 0 runs only pid 4242. On GPU 1 the first poll finds three utilization samples,
/// 400 ms, 200 ms and 0 ms before the moment of that poll, of 40 %, 60 % and 80 %; later
/// polls find no new sample. Every poll of per-process utilization finds this process at
/// 30 % and pid 4242 at 45 %. While a file named `fail` exists next to the library,
/// sampling calls fail as if the GPU had fallen off the bus.
const STANDIN_C: &str = r#"
#include <string.h>
#include <stdio.h>
#ifndef FAIL_FILE
#define FAIL_FILE "/nonexistent"
#endif
#include <sys/time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
enum { OK = 0, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, NOT_FOUND = 6, INSUFFICIENT_SIZE = 7,
       GPU_IS_LOST = 15 };

struct nvmlDevice_st { unsigned int index; unsigned long long base; };
typedef struct nvmlDevice_st *nvmlDevice_t;
static struct nvmlDevice_st devices[2] = { { 0, 0 }, { 1, 0 } };

typedef union { double d; int si; unsigned int ui; unsigned long ul; unsigned long long ull;
                long long sll; unsigned short us; } nvmlValue_t;
typedef struct { unsigned long long timeStamp; nvmlValue_t sampleValue; } nvmlSample_t;
typedef struct { unsigned int pid; unsigned long long timeStamp; unsigned int smUtil;
                 unsigned int memUtil; unsigned int encUtil; unsigned int decUtil; }
        nvmlProcessUtilizationSample_t;
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId;
                 unsigned int computeInstanceId; } nvmlProcessInfo_t;

static unsigned long long now_micros(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (unsigned long long)tv.tv_sec * 1000000ULL + tv.tv_usec;
}

nvmlReturn_t nvmlInit_v2(void) { return OK; }
nvmlReturn_t nvmlShutdown(void) { return OK; }
const char *nvmlErrorString(nvmlReturn_t result) { (void)result; return "stand-in error"; }
nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    snprintf(version, length, "550.54.15");
    return OK;
}
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) { *count = 2; return OK; }
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (index >= 2) return INVALID_ARGUMENT;
    *device = &devices[index];
    return OK;
}
nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    if (strcmp(uuid, "GPU-standin-0") == 0) { *device = &devices[0]; return OK; }
    if (strcmp(uuid, "GPU-standin-1") == 0) { *device = &devices[1]; return OK; }
    return NOT_FOUND;
}
nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    *index = device->index;
    return OK;
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    snprintf(uuid, length, "GPU-standin-%u", device->index);
    return OK;
}

nvmlReturn_t nvmlDeviceGetSamples(nvmlDevice_t device, int type, unsigned long long lastSeen,
                                  int *valueType, unsigned int *count, nvmlSample_t *samples) {
    static const long long ago[3] = { 400000, 200000, 0 };
    static const unsigned int gpu1[3] = { 40, 60, 80 };
    static const unsigned int gpu0[3] = { 99, 99, 99 };
    if (access(FAIL_FILE, F_OK) == 0) return GPU_IS_LOST;
    if (type != 1) return NOT_SUPPORTED;
    if (device->base == 0) device->base = now_micros();
    unsigned int n = 0;
    nvmlSample_t found[3];
    for (int i = 0; i < 3; i++) {
        unsigned long long stamp = device->base - ago[i];
        if (stamp <= lastSeen) continue;
        found[n].timeStamp = stamp;
        found[n].sampleValue.ull = 0;
        found[n].sampleValue.ui = device->index == 1 ? gpu1[i] : gpu0[i];
        n++;
    }
    *valueType = 1;
    if (n == 0) return NOT_FOUND;
    if (samples == NULL) { *count = n; return OK; }
    if (*count < n) { *count = n; return INSUFFICIENT_SIZE; }
    memcpy(samples, found, n * sizeof(nvmlSample_t));
    *count = n;
    return OK;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                             nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *count, unsigned long long lastSeen) {
    (void)lastSeen;
    if (access(FAIL_FILE, F_OK) == 0) return GPU_IS_LOST;
    if (device->index != 1) return NOT_FOUND;
    if (utilization == NULL) { *count = 2; return OK; }
    if (*count < 2) { *count = 2; return INSUFFICIENT_SIZE; }
    unsigned long long stamp = now_micros();
    memset(utilization, 0, 2 * sizeof(*utilization));
    utilization[0].pid = (unsigned int)getpid();
    utilization[0].timeStamp = stamp;
    utilization[0].smUtil = 30;
    utilization[1].pid = 4242;
    utilization[1].timeStamp = stamp;
    utilization[1].smUtil = 45;
    *count = 2;
    return OK;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    unsigned int n = device->index == 1 ? 2 : 1;
    if (infos == NULL || *count < n) { *count = n; return n ? INSUFFICIENT_SIZE : OK; }
    memset(infos, 0, n * sizeof(*infos));
    infos[0].pid = 4242;
    infos[0].usedGpuMemory = device->index == 1 ? 300ULL << 20 : 50ULL << 20;
    if (n == 2) {
        infos[1].pid = (unsigned int)getpid();
        infos[1].usedGpuMemory = 100ULL << 20;
    }
    *count = n;
    return OK;
}
"#;

/// Compiles the stand-in driver into `dir` and returns the library path.
pub fn build_standin(dir: &Path) -> PathBuf {
    let source = dir.join("standin_nvml.c");
    let library = dir.join("libnvidia-ml.so.1");
    std::fs::write(&source, STANDIN_C).unwrap();
    let output = Command::new("gcc")
        .arg(format!("-DFAIL_FILE=\"{}\"", dir.join("fail").display()))
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
        .arg(&library)
        .arg(&source)
        .output()
        .expect("gcc must be installed to build the stand-in NVML library");
    assert!(output.status.success(), "gcc failed: {}", String::from_utf8_lossy(&output.stderr));
    library
}
