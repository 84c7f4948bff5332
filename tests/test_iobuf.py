"""O_DIRECT buffers carved from huge pages: aligned, disjoint, none across a huge-page
boundary, and physically contiguous where the kernel gives transparent huge pages."""

from __future__ import annotations

import itertools
import os

import pytest

from spark_harness.iobuf import HUGE_PAGE, PAGE, _address, contiguous_buffers, contiguous_share
from spark_harness_testkit.host import thp_mode


@pytest.mark.parametrize(("count", "nbytes"), [(64, 128 << 10), (9, 256 << 10), (5, 12 << 10)])
def test_buffers_are_aligned_disjoint_and_inside_one_huge_page(count: int, nbytes: int) -> None:
    buffers = contiguous_buffers(count, nbytes)
    assert len(buffers) == count
    spans = sorted((_address(b), _address(b) + len(b)) for b in buffers)
    assert all(len(b) == nbytes and not b.readonly for b in buffers)
    assert all(start % PAGE == 0 for start, _ in spans)  # O_DIRECT's alignment
    assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(spans))
    assert all(start // HUGE_PAGE == (end - 1) // HUGE_PAGE for start, end in spans)
    assert all(not any(b) for b in buffers)  # touched (zeroed) when made


def test_a_buffer_larger_than_a_huge_page_starts_on_one() -> None:
    buffers = contiguous_buffers(2, HUGE_PAGE + PAGE)
    assert [_address(b) % HUGE_PAGE for b in buffers] == [0, 0]
    assert abs(_address(buffers[1]) - _address(buffers[0])) >= 2 * HUGE_PAGE


def test_a_size_o_direct_cannot_use_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of"):
        contiguous_buffers(1, PAGE + 512)
    with pytest.raises(ValueError):
        contiguous_buffers(1, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="page frames are hidden from non-root readers")
@pytest.mark.skipif(thp_mode() == "never", reason="transparent huge pages are off here")
def test_buffers_are_physically_contiguous_where_the_kernel_gives_huge_pages() -> None:
    """The point of the module: each buffer in one contiguous run of page frames, so a
    request takes one segment whatever the allocator did (plain anonymous memory of this
    size comes back as scattered 4 KiB frames)."""
    assert contiguous_share(contiguous_buffers(16, 256 << 10)) == 1.0
