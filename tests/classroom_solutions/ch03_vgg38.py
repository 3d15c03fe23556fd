"""Reference solution of ch03_vgg38.py."""
import numpy as np

import minideep as md
import minideep.nn.functional as F


def im2col(x, kh, kw, stride, padding):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x_pad[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)


def col2im(cols, x_shape, kh, kw, stride, padding):
    n, c, h, w = x_shape
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    cols = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    x_pad = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            x_pad[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += cols[:, :, i, j]
    return x_pad[:, :, padding : padding + h, padding : padding + w]


class Conv2d(md.Function):
    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, weight, bias):
        n, _, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        oh = (h + 2 * self.padding - kh) // self.stride + 1
        ow = (w + 2 * self.padding - kw) // self.stride + 1
        self.cols = im2col(x, kh, kw, self.stride, self.padding)
        self.x_shape, self.weight = x.shape, weight
        y = self.cols @ weight.reshape(c_out, -1).T + bias
        return y.reshape(n, oh, ow, c_out).transpose(0, 3, 1, 2)

    def backward(self, grad):
        c_out, _, kh, kw = self.weight.shape
        g = grad.transpose(0, 2, 3, 1).reshape(-1, c_out)
        gw = (g.T @ self.cols).reshape(self.weight.shape)
        gx = col2im(g @ self.weight.reshape(c_out, -1), self.x_shape, kh, kw, self.stride, self.padding)
        return gx, gw, g.sum(axis=0)


class MaxPool2d(md.Function):
    def __init__(self, kernel_size, stride):
        self.k, self.s = kernel_size, stride

    def forward(self, x):
        k, s = self.k, self.s
        oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        # windows[i*k + j]: the input at offset (i, j) of every window, (N, C, OH, OW)
        windows = np.stack([x[:, :, i : i + s * oh : s, j : j + s * ow : s] for i in range(k) for j in range(k)])
        self.x_shape = x.shape
        self.argmax = np.argmax(windows, axis=0)
        return np.max(windows, axis=0)

    def backward(self, grad):
        k, s = self.k, self.s
        oh, ow = grad.shape[2:]
        dx = np.zeros(self.x_shape, dtype=grad.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, :, i : i + s * oh : s, j : j + s * ow : s] += grad * (self.argmax == i * k + j)
        return dx


class BatchNorm(md.Function):
    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, gamma, beta):
        self.axes = (0,) if x.ndim == 2 else (0, 2, 3)
        self.shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
        mean = x.mean(axis=self.axes, keepdims=True)
        var = x.var(axis=self.axes, keepdims=True)
        self.inv_std = 1 / np.sqrt(var + self.eps)
        self.x_hat = (x - mean) * self.inv_std
        self.gamma = gamma.reshape(self.shape)
        return self.gamma * self.x_hat + beta.reshape(self.shape)

    def backward(self, grad):
        m = grad.size // grad.shape[1]
        sum_g = grad.sum(axis=self.axes, keepdims=True)
        sum_g_xhat = (grad * self.x_hat).sum(axis=self.axes, keepdims=True)
        gx = self.gamma * self.inv_std / m * (m * grad - sum_g - self.x_hat * sum_g_xhat)
        return gx, sum_g_xhat.reshape(-1), sum_g.reshape(-1)


def conv2d(x, weight, bias, stride=1, padding=0):
    return Conv2d(stride, padding)(x, weight, bias)


def max_pool2d(x, kernel_size, stride):
    return MaxPool2d(kernel_size, stride)(x)


def batch_norm(x, gamma, beta):
    return BatchNorm()(x, gamma, beta)


def residual_block(x, w0, w1):
    h = F.relu(F.conv2d(x, w0, padding=1))
    return F.relu(F.conv2d(h, w1, padding=1) + x)
