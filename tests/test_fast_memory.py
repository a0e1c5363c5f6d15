"""``reuse_freed_memory`` / ``optimize_for_inference(reuse_memory=True)``: freed feature maps are reused, not faulted
back in. The malloc switch is process-wide, so the page-fault check runs in a child process and the suite's own
allocator is left as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import REPO_ROOT

import hrnet_zoo  # noqa: F401  (registers the models)
from hrnet_zoo.fast import memory
from hrnet_zoo.fast.memory import _glibc as real_glibc  # imported before conftest's fixture stands in for it
from hrnet_zoo.fast.optimize import optimize_for_inference

# Minor page faults of writing a fresh 64 MiB tensor (above glibc's largest mmap threshold, 32 MiB), the fewest
# over three allocate-write-free cycles, before and after the switch. (After it, the heap still grows now and then
# while glibc settles where such blocks go, so one cycle may fault; the steady state does not.)
_FAULTS_SCRIPT = """
import json, resource, torch
from hrnet_zoo.fast.memory import reuse_freed_memory

def fewest_faults_of_a_fresh_map():
    counts = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(16 << 20).fill_(1.0)  # 64 MiB allocated, written and freed
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return min(counts)

default = fewest_faults_of_a_fresh_map()
applied = reuse_freed_memory()
kept = fewest_faults_of_a_fresh_map()
print(json.dumps(dict(default=default, applied=applied, kept=kept, again=reuse_freed_memory())))
"""


@pytest.mark.subprocess
@pytest.mark.skipif(real_glibc() is None, reason='glibc only: elsewhere the switch is a no-op')
def test_freed_maps_are_reused_not_faulted_in_again():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS='1')
    done = subprocess.run([sys.executable, '-c', _FAULTS_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # 64 MiB in 4 KiB pages is 16,384 faults; transparent huge pages, where the kernel gives them, would cut that
    # to tens, so the default's count is only required to be well above the kept one's
    assert result['applied'] is True and result['again'] is True
    assert result['kept'] < 200, result
    assert result['default'] > 10 * max(result['kept'], 20), result


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(memory, '_glibc', real_glibc)
    monkeypatch.setattr(memory.sys, 'platform', 'darwin')
    assert memory.reuse_freed_memory() is False


def test_the_switch_is_glibcs_no_mmap_and_no_trim(malloc_left_alone):
    assert memory.reuse_freed_memory() is True
    # <malloc.h>: M_MMAP_MAX (-4) 0 = no block by mmap; M_TRIM_THRESHOLD (-1) -1 = never trim the heap
    assert malloc_left_alone.mallopt_calls == [(-4, 0), (-1, -1)]


def _tiny_model() -> torch.nn.Module:
    import timm

    return timm.create_model('hrnetv2_w18_small_v1', features_only=True).eval()


@pytest.mark.parametrize('reuse_memory', [True, False])
def test_optimize_for_inference_asks_for_it(malloc_left_alone, reuse_memory):
    fast = optimize_for_inference(_tiny_model(), fuse_ops=False, reuse_memory=reuse_memory)
    assert malloc_left_alone.mallopt_calls == ([(-4, 0), (-1, -1)] if reuse_memory else [])
    assert not fast.training


def test_openvino_backend_refuses_it():
    with pytest.raises(ValueError, match="reuse_memory are options of backend='torch'"):
        optimize_for_inference(_tiny_model(), backend='openvino', reuse_memory=True)
