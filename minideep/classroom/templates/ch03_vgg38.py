"""Chapter 03, VGG38 broken and fixed: convolution, max pooling, batch norm, a residual block.

Shapes follow PyTorch: images are (N, C, H, W), a convolution's weight is (C_out, C_in, kh, kw).
With padding p and stride s, output pixel (oh, ow) of a k x k window reads the padded input
at (s*oh + i, s*ow + j) for i, j < k, so OH = (H + 2p - k) // s + 1 (likewise OW).
Read docs/chapters/03-vgg38.md, "The networks" and "Two fixes".
"""
import numpy as np

import minideep as md
import minideep.nn.functional as F


def im2col(x, kh, kw, stride, padding):
    """The windows of x (N, C, H, W) as rows: cols (N*OH*OW, C*kh*kw).

    Row n*OH*OW + oh*OW + ow holds the window of output pixel (oh, ow) of image n, in the
    order (c, i, j), which is the order of weight.reshape(C_out, -1). Pad x with zeros first
    (np.pad), then copy, for each kernel offset (i, j), the strided slice
    x_pad[:, :, i : i + s*OH : s, j : j + s*OW : s] into its place: a loop over kh*kw
    offsets, not over pixels.
    """
    raise NotImplementedError("see docs/chapters/03-vgg38.md, 'The networks', and the im2col comment in minideep/ops/conv.py")


def col2im(cols, x_shape, kh, kw, stride, padding):
    """The adjoint of im2col: add every entry of cols (N*OH*OW, C*kh*kw) back onto the pixel of
    x (shape ``x_shape``) that im2col read it from, then crop the padding.

    Windows overlap when the stride is smaller than the kernel: one pixel is read by several
    windows, so its gradient is the sum of their entries (+=, not =).
    """
    raise NotImplementedError("see docs/chapters/03-vgg38.md, 'The networks', and the col2im comment in minideep/ops/conv.py")


class Conv2d(md.Function):
    """y = cols @ W2^T + b, cols = im2col(x), W2 = weight.reshape(C_out, -1), as (N, C_out, OH, OW).

    With G = dL/dy as a (N*OH*OW, C_out) matrix: dL/dW2 = G^T cols, dL/db = G summed over
    its rows, dL/dcols = G W2, and dL/dx = col2im(dL/dcols).
    """

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias):
        n, _, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        oh = (h + 2 * self.padding - kh) // self.stride + 1
        ow = (w + 2 * self.padding - kw) // self.stride + 1
        self.cols = im2col(x, kh, kw, self.stride, self.padding)
        self.x_shape, self.weight = x.shape, weight
        y = self.cols @ weight.reshape(c_out, -1).T + bias  # (N*OH*OW, C_out)
        return y.reshape(n, oh, ow, c_out).transpose(0, 3, 1, 2)

    def backward(self, grad):
        raise NotImplementedError("see docs/chapters/03-vgg38.md, 'The networks'")


class MaxPool2d(md.Function):
    """y = the largest value of each k x k window (stride s, no padding).

    dL/dx: each window's gradient goes to the one input that was its maximum, and the
    windows' contributions add up where windows overlap (s < k).
    """

    def __init__(self, kernel_size, stride):
        self.k, self.s = kernel_size, stride

    def forward(self, x):
        k, s = self.k, self.s
        oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        # windows[i*k + j]: the input at offset (i, j) of every window, (N, C, OH, OW)
        windows = np.stack([x[:, :, i : i + s * oh : s, j : j + s * ow : s] for i in range(k) for j in range(k)])
        self.x_shape = x.shape
        # Which offset i*k + j of its window holds each output's maximum (the first, on a tie).
        self.argmax = np.argmax(windows, axis=0)  # (N, C, OH, OW)
        return np.max(windows, axis=0)

    def backward(self, grad):
        raise NotImplementedError("see docs/chapters/03-vgg38.md, 'Why the deep plain network does not learn'")


class BatchNorm(md.Function):
    """Training-mode batch norm over axis 1 of (N, C) or (N, C, H, W):

        y = gamma * x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps),

    mu and var the mean and (biased) variance of each channel's m values. x_hat depends on
    every x of its channel through mu and var, so with g = dL/dy and sums over a channel:

        dL/dx = gamma / (m sqrt(var + eps)) * (m g - sum(g) - x_hat * sum(g * x_hat))
        dL/dgamma = sum(g * x_hat),   dL/dbeta = sum(g).
    """

    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, gamma, beta):
        self.axes = (0,) if x.ndim == 2 else (0, 2, 3)  # the axes of one channel's values
        self.shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)  # a per-channel vector, broadcastable
        mean = x.mean(axis=self.axes, keepdims=True)
        var = x.var(axis=self.axes, keepdims=True)
        self.inv_std = 1 / np.sqrt(var + self.eps)
        self.x_hat = (x - mean) * self.inv_std
        self.gamma = gamma.reshape(self.shape)
        return self.gamma * self.x_hat + beta.reshape(self.shape)

    def backward(self, grad):
        raise NotImplementedError("see docs/chapters/03-vgg38.md, 'Two fixes'")


def conv2d(x, weight, bias, stride=1, padding=0):
    return Conv2d(stride, padding)(x, weight, bias)


def max_pool2d(x, kernel_size, stride):
    return MaxPool2d(kernel_size, stride)(x)


def batch_norm(x, gamma, beta):
    return BatchNorm()(x, gamma, beta)


def residual_block(x, w0, w1):
    """y = relu(F(x) + x),  F(x) = conv(relu(conv(x, w0)), w1): 3x3 convolutions, padding 1, no bias.

    The block of He et al. without batch norm, written with minideep's own ops (F.conv2d,
    F.relu), which do the backward pass for you. See docs/chapters/03-vgg38.md, "Two fixes".
    """
    raise NotImplementedError("see docs/chapters/03-vgg38.md, 'Two fixes'")
