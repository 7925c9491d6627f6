"""Playing a DreamEnv: from the keyboard or by the run's policy, in a pygame window or to video."""

import os
import sys
import warnings

import gymnasium as gym
import imageio
import numpy as np

from twm_tf.envs import dream
from twm_tf.envs import dream_render


def _pygame():
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # SDL draws the window through OpenGL by default; Mesa's llvmpipe (Xvfb, machines without a
    # GPU driver) then loads an LLVM that clashes with TensorFlow's and set_mode segfaults.
    # Plain X11 blits are fast enough for a few hundred pixels at 15 frames per second.
    os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
    import pygame  # Only the windowed paths need it.

    return pygame


def _gymnasium_play():
    """gymnasium.utils.play, imported without its warning about matplotlib's TkAgg backend
    (it only serves PlayPlot, which the dream does not use)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*matplotlib is not installed")
        from gymnasium.utils import play as gym_play

    return gym_play


def check_display(alternative: str = "") -> None:
    """Raises RuntimeError unless pygame can open a real window (or SDL_VIDEODRIVER names one).

    Without a display SDL silently falls back to its offscreen driver: a window nobody sees.
    `alternative` ends the error's one line (what else the caller could do).
    """
    where = "run it on a desktop or under xvfb-run" + (f", {alternative}" if alternative else "")
    linux_without_display = sys.platform.startswith("linux") and not any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")
    )
    if linux_without_display:  # Said before SDL prints its own complaints.
        raise RuntimeError(f"no display to open a window on (DISPLAY is unset): {where}")
    pygame = _pygame()
    try:
        pygame.display.init()
    except pygame.error as error:
        raise RuntimeError(f"no display to open a window on ({error}): {where}") from None
    driver = pygame.display.get_driver()
    if driver in ("offscreen", "dummy") and os.environ.get("SDL_VIDEODRIVER") != driver:
        raise RuntimeError(
            f"no display to open a window on (DISPLAY is {os.environ.get('DISPLAY') or 'unset'}, "
            f"SDL found only its {driver!r} driver): {where}"
        )


class _MouseEdits:
    """Sets the latent cell under the mouse on a click, and while button 1 is held (a drag)."""

    def __init__(self, env: dream.DreamEnv):
        self.env = env

    def __call__(self) -> None:
        pygame = _pygame()
        image_shape = dream_render.Renderer(self.env).size
        positions = [e.pos for e in pygame.event.get(pygame.MOUSEBUTTONDOWN) if e.button == 1]
        if pygame.mouse.get_pressed()[0]:
            positions.append(pygame.mouse.get_pos())
        width, height = pygame.display.get_surface().get_size()
        # gymnasium.utils.play scales the image to fit and centres it.
        scale = min(width / image_shape[1], height / image_shape[0])
        left = (width - round(image_shape[1] * scale)) / 2
        top = (height - round(image_shape[0] * scale)) / 2
        for px, py in positions:
            cell = self.env.latent_at((px - left) / scale, (py - top) / scale)
            if cell is not None:
                self.env.set_latent(*cell)


def _caption(env: dream.DreamEnv, who: str) -> str:
    return f"twm-tf dream: {env.run.config.game} ({who}, {env.run.checkpoint})"


def play_keyboard(env: gym.Env, *, fps: int, seed: int | None = None, on_step=None) -> None:
    """Plays `env` (a DreamEnv, possibly wrapped) from the keyboard in a window until closed.

    gymnasium.utils.play with the game's key map; no key is NOOP, Escape quits, a click on the
    latent grid sets that cell. on_step(action, info, image) runs after every step (recording,
    tests) with the rendered image after the step and any edit.

    Raises:
      RuntimeError: if there is no display (`check_display`).
    """
    check_display()
    gym_play = _gymnasium_play()
    dream_env = env.unwrapped
    edit = _MouseEdits(dream_env)

    def callback(obs_t, obs_tp1, action, reward, terminated, truncated, info):
        del obs_t, obs_tp1, reward, terminated, truncated
        edit()
        if on_step is not None:
            on_step(action, info, env.render())

    keys = dream_env.get_keys_to_action()
    env.reset(seed=seed)
    env.step(0)  # Compiles the step (seconds at the paper's sizes) before the window opens.
    _pygame().display.set_caption(_caption(dream_env, "keyboard"))
    gym_play.play(env, fps=fps, zoom=1, callback=callback, keys_to_action=keys, seed=seed, noop=0)


class _Window:
    """A pygame window that shows rendered images at a pace; clicks on the latent grid edit z."""

    def __init__(self, env: dream.DreamEnv, image: np.ndarray):
        check_display()
        self._pygame, self._display = _pygame(), _gymnasium_play().display_arr
        self._pygame.display.set_caption(_caption(env, "agent"))
        self._screen = self._pygame.display.set_mode(image.shape[1::-1])
        self._clock, self._edit = self._pygame.time.Clock(), _MouseEdits(env)

    def show(self, image: np.ndarray, fps: int) -> bool:
        """Shows `image` for 1 / fps s; False once Escape or the close button was pressed."""
        pygame = self._pygame
        self._display(self._screen, image, self._screen.get_size(), transpose=True)
        pygame.display.flip()
        self._edit()
        events = pygame.event.get()
        self._clock.tick(fps)
        return not any(
            e.type == pygame.QUIT or (e.type == pygame.KEYDOWN and e.key == pygame.K_ESCAPE)
            for e in events
        )

    def close(self) -> None:
        self._pygame.quit()


def play_agent(env: gym.Env, *, steps: int, fps: int, window: bool, seed=None, on_step=None):
    """The run's policy plays one dream of up to `steps` steps; returns the rendered images.

    With `window` they are shown at `fps` (Escape or closing the window stops; clicks edit z).
    on_step(action, info, image) runs after every step.

    Raises:
      RuntimeError: if `window` and there is no display (`check_display`).
    """
    dream_env = env.unwrapped
    env.reset(seed=seed)
    images = [env.render()]
    shown = _Window(dream_env, images[0]) if window else None
    for _ in range(steps):
        if shown is not None and not shown.show(images[-1], fps):
            break
        action = dream_env.agent_action()
        _, _, terminated, truncated, info = env.step(action)
        images.append(env.render())
        if on_step is not None:
            on_step(action, info, images[-1])
        if terminated or truncated:
            break
    if shown is not None:
        shown.close()
    return images


def write_video(path: str, images: list[np.ndarray], fps: int) -> None:
    """Writes [H, W, 3] uint8 images as an .mp4 (or a looping .gif) at `fps`."""
    if path.endswith(".gif"):
        imageio.mimwrite(path, images, duration=1000 / fps, loop=0)
    else:
        imageio.mimwrite(path, images, fps=fps, macro_block_size=16)
