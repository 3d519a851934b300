"""Max pooling of spike trains: the output's spike count is the running max of input counts.

State per sample: ``count`` (C, H, W), the spikes each input neuron has emitted so far, and
``best`` (C, Ho, Wo), the largest count in each window at the previous step. One step:

1. ``count += 1`` where the input spiked this step;
2. ``m = max(count over the window)`` (padding never wins);
3. the output emits ``(m - best) * theta[c]`` (0 or one spike of the channel's threshold);
4. ``best <- m``.

So after every step the output has emitted exactly ``max_i count_i`` spikes: its rate is the
max of the input rates, which is max pooling of the rate-coded activations. Gating a window by
the neuron with the highest count so far (Rueckauer et al. 2017) can lose spikes when counts
tie; this rule cannot.
"""

from __future__ import annotations

import numpy as np

from refsnn.jit import parallel, prange
from refsnn.model.ops import pool_overhang


def maxpool_spikes_numpy(spikes, count, best, theta_c, kernel, stride, padding):
    """Reference step. ``spikes`` (B, C, H, W) event values (0 or the channel's theta);
    ``count`` (B, C, H, W) int64 and ``best`` (B, C, Ho, Wo) int64 are updated in place;
    ``theta_c`` (C,). Returns the output events, shape (B, C, Ho, Wo)."""
    count += spikes > 0
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo = best.shape[2], best.shape[3]
    # windows past the end (ceil_mode) see more padding, which never wins either
    padded = np.pad(count, ((0, 0), (0, 0),
                            (ph, ph + pool_overhang(count.shape[2], kh, sh, ph, ho)),
                            (pw, pw + pool_overhang(count.shape[3], kw, sw, pw, wo))),
                    constant_values=-1)
    m = np.full(best.shape, -1, dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            m = np.maximum(m, padded[:, :, ky:ky + sh * (ho - 1) + 1:sh,
                                     kx:kx + sw * (wo - 1) + 1:sw])
    out = ((m - best) * theta_c[None, :, None, None]).astype(spikes.dtype)
    best[...] = m
    return out


@parallel(work=lambda spikes, count, best, theta_c, kh, kw, sh, sw, ph, pw, out:
          spikes.size * kh * kw)
def _maxpool_kernel(spikes, count, best, theta_c, kh, kw, sh, sw, ph, pw, out):
    B, C, H, W = spikes.shape
    ho, wo = best.shape[2], best.shape[3]
    for job in prange(B * C):
        b = job // C
        c = job % C
        for y in range(H):
            for x in range(W):
                if spikes[b, c, y, x] > 0:
                    count[b, c, y, x] += 1
        for oy in range(ho):
            for ox in range(wo):
                m = -1
                for ky in range(kh):
                    y = oy * sh + ky - ph
                    if y < 0 or y >= H:
                        continue
                    for kx in range(kw):
                        x = ox * sw + kx - pw
                        if x >= 0 and x < W and count[b, c, y, x] > m:
                            m = count[b, c, y, x]
                out[b, c, oy, ox] = (m - best[b, c, oy, ox]) * theta_c[c]
                best[b, c, oy, ox] = m


def maxpool_spikes_numba(spikes, count, best, theta_c, kernel, stride, padding):
    """Numba twin of :func:`maxpool_spikes_numpy`; bit-identical."""
    out = np.empty(best.shape, dtype=spikes.dtype)
    _maxpool_kernel(spikes, count, best, theta_c, kernel[0], kernel[1], stride[0], stride[1],
                    padding[0], padding[1], out)
    return out
