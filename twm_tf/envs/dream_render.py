"""DreamEnv's rgb_array image: the frames, the latent grid, the prediction and the attention."""

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # Only for annotations: dream imports this module.
    from twm_tf.envs import dream

HEADER = 18  # pixels of caption above each frame and the latent grid
_KIND_COLORS = {"z": (66, 133, 244), "a": (234, 67, 53), "r": (52, 168, 83)}  # attention panel


class Renderer:
    """Draws a DreamEnv's state: frames, then the panel (latent grid, text, attention).

    The image: the newest frame (the real one left of it with side_by_side) and the panel: latent
    grid (rows: variables, columns: classes; brightness p(z), the class in z blue), step, action,
    reward, discount and the action token's attention (mean over heads, rows: layers, columns:
    the memory's z/a/r tokens, oldest left). The layout depends only on the env's settings, so
    `size` and `latent_at` need no state.
    """

    def __init__(self, env: "dream.DreamEnv"):
        config = env.run.config
        self.env = env
        self.frame = config.frame_size * env.zoom
        frames = 2 if env.side_by_side else 1
        self.panel_x = frames * (self.frame + 8)
        vars_, classes = config.latent_vars, config.latent_classes
        self.cell = int(np.clip(192 // max(vars_, classes), 4, 24))
        keys = len(env.attention_tokens)
        self.column = int(np.clip(432 // keys, 3, 12))
        layers = config.dyn_layers
        self.row = int(np.clip(120 // layers, 4, 12))
        self.grid = (self.panel_x, HEADER, classes * self.cell, vars_ * self.cell)  # x, y, w, h
        self.text_y = HEADER + self.grid[3] + 18
        self.attention_y = self.text_y + 3 * 16 + 14
        panel_w = max(self.grid[2], keys * self.column, 240) + 8 if env.panel else 0
        panel_h = self.attention_y + layers * self.row + 30 if env.panel else 0
        width, height = self.panel_x + panel_w, max(HEADER + self.frame, panel_h) + 4
        self.size = (-(-height // 16) * 16, -(-width // 16) * 16)  # video encoders want 16s

    def latent_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(variable, class) of the latent grid cell at pixel (x, y), None off the grid."""
        gx, gy, gw, gh = self.grid
        if not self.env.panel or not (gx <= x < gx + gw and gy <= y < gy + gh):
            return None
        return int((y - gy) // self.cell), int((x - gx) // self.cell)

    def draw(self, state: dict) -> np.ndarray:
        """[H, W, 3] uint8 image of `state`, the env's state after a reset."""
        env = self.env
        canvas = np.zeros((*self.size, 3), np.uint8)
        last = state["last"]
        dream_caption = "dream" if last is None else f"dream r={last['reward_raw']:+.2f}"
        columns = [(dream_caption, state["obs"][-1])]
        if env.side_by_side:
            real = state["real"]
            caption = "real: game over" if real["game_over"] else f"real r={real['reward']:+g}"
            columns.insert(0, (caption, real["obs"][-1]))
        for i, (caption, frame) in enumerate(columns):
            x = i * (self.frame + 8)
            image = cv2.resize(frame, (self.frame, self.frame), interpolation=cv2.INTER_NEAREST)
            canvas[HEADER : HEADER + self.frame, x : x + self.frame] = image[..., None]
            _text(canvas, caption, x + 2, HEADER - 5)
        if env.panel:
            self._draw_panel(canvas, state)
        return canvas

    def _draw_panel(self, canvas: np.ndarray, state: dict) -> None:
        gx, gy, gw, gh = self.grid
        probs = state["probs"].numpy()  # [V, C]
        chosen = state["z"].numpy()[0] > 0.5
        grid = np.repeat(probs[..., None], 3, axis=-1) * 255.0
        grid[chosen] = _KIND_COLORS["z"]
        grid = cv2.resize(grid.astype(np.uint8), (gw, gh), interpolation=cv2.INTER_NEAREST)
        canvas[gy : gy + gh, gx : gx + gw] = grid
        _text(canvas, "z: variables x classes (click to set)", gx, gy - 5)
        last, meanings = state["last"], self.env.action_meanings
        lines = [f"step {state['steps']}"]
        if last is not None:
            end = "  terminal" if last["terminated"] else ""
            lines = [
                f"step {state['steps']}  {meanings[last['action']]}",
                f"reward {last['reward_raw']:+.3f} (tanh {last['reward_tanh']:+.3f})",
                f"discount {last['discount']:.3f}{end}",
            ]
        for i, line in enumerate(lines):
            _text(canvas, line, gx, self.text_y + 16 * i)
        self._draw_attention(canvas, None if last is None else last["attention"])

    def _draw_attention(self, canvas: np.ndarray, attention: np.ndarray | None) -> None:
        x0, y0, tokens = self.grid[0], self.attention_y, self.env.attention_tokens
        _text(canvas, "attention of a_t per layer (z/a/r)", x0, y0 - 5)
        layers = self.env.run.config.dyn_layers
        weights = np.zeros([layers, len(tokens)]) if attention is None else attention.mean(1)
        scale = weights / np.maximum(weights.max(axis=1, keepdims=True), 1e-9)
        colors = np.array([_KIND_COLORS[token[0]] for token in tokens], np.float32)  # [keys, 3]
        image = (scale[..., None] * colors[None]).astype(np.uint8)  # [layers, keys, 3]
        w, h = len(tokens) * self.column, layers * self.row
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
        canvas[y0 : y0 + h, x0 : x0 + w] = image
        for i, token in enumerate(tokens):
            x = x0 + i * self.column
            if self.column >= 6:
                _text(canvas, token[0], x, y0 + h + 10, 0.6, _KIND_COLORS[token[0]])
            if token[0] == "z" and int(token[1:]) % 4 == 0:
                _text(canvas, token[1:], x, y0 + h + 22, 0.6)


def _text(canvas, text, x, y, scale=0.8, color=(255, 255, 255)) -> None:
    cv2.putText(canvas, text, (int(x), int(y)), cv2.FONT_HERSHEY_PLAIN, scale, color, 1)
