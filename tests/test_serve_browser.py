"""The `facedancer serve` page in Debian's headless Chromium (selenium), against the real app on loopback:
a person uploads photos, clicks a face, presses Swap, sees the result, and runs a video job that plays.

Set FACEDANCER_SCREENSHOTS=DIR to keep the page's screenshots (the README's come from this test)."""

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from serving import decode_image, running, small_swapper
from videos import moving_face_frames, two_people_frames, write_video

from facedancer.images import write_image
from facedancer.serve import ServeSettings, create_app

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/install.sh installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(arg)
    options.add_argument("--autoplay-policy=no-user-gesture-required")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser, detector, tmp_path_factory):
    app = create_app(small_swapper(detector), ServeSettings(data_dir=tmp_path_factory.mktemp("page-data")))
    with running(app) as url:
        browser.get(url + "/")
        yield browser, url


@pytest.fixture(scope="module")
def inputs(photos, tmp_path_factory):
    from facedancer.images import read_image
    from facedancer.samples import portrait

    root = tmp_path_factory.mktemp("page-inputs")
    write_image(root / "pair.png", two_people_frames(photos / "obama.jpg", photos / "biden.jpg", 1, (640, 320))[0])
    write_image(root / "source.jpg", portrait(read_image(photos / "obama2.jpg"), 320))
    write_video(root / "clip.mp4", moving_face_frames(photos / "obama.jpg", count=10, size=(240, 180)))
    return root


def _wait(driver, condition, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition(driver)
        if value:
            return value
        time.sleep(0.1)
    status = driver.find_element("id", "status").text
    raise AssertionError(f"timed out waiting for {what}; page status: {status!r}")


def _screenshot(driver, name):
    folder = os.environ.get("FACEDANCER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def _result_pixels(driver, element_id):
    """The bytes the page holds for its result, fetched inside the page (it is a blob: URL)."""
    import base64

    data = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(document.getElementById(arguments[0]).src).then((r) => r.arrayBuffer()).then((b) => {
          let s = ""; new Uint8Array(b).forEach((c) => { s += String.fromCharCode(c); }); done(btoa(s)); });""",
        element_id,
    )
    return base64.b64decode(data)


def test_click_a_face_swap_and_see_the_result_beside_the_target(page, inputs):
    driver, _ = page
    driver.find_element("id", "target").send_keys(str(inputs / "pair.png"))
    driver.find_element("id", "source").send_keys(str(inputs / "source.jpg"))
    _wait(driver, lambda d: "2 face(s) found" in d.find_element("id", "status").text, what="face detection")
    canvas = driver.find_element("id", "faces")
    faces = driver.execute_script("return state.faces")
    left = min(faces, key=lambda f: f["box"][0])
    x1, y1, x2, y2 = left["box"]
    scale = canvas.size["width"] / 640
    from selenium.webdriver import ActionChains

    ActionChains(driver).move_to_element_with_offset(
        canvas, ((x1 + x2) / 2 - 320) * scale, ((y1 + y2) / 2 - 160) * scale
    ).click().perform()
    assert driver.find_element("id", "select-click").is_selected()
    assert "chosen" in driver.find_element("id", "chosen").text
    driver.find_element("id", "swap").click()
    result = driver.find_element("id", "result-image")
    _wait(driver, lambda d: result.is_displayed() and d.execute_script("return arguments[0].naturalWidth", result))
    assert driver.find_element("id", "status").text == "done"
    assert driver.find_element("id", "download").get_attribute("download") == "facedancer-result.png"
    _screenshot(driver, "serve_image.png")
    swapped, fmt = decode_image(_result_pixels(driver, "result-image"))
    original, _ = decode_image((inputs / "pair.png").read_bytes())
    assert fmt == "PNG" and swapped.shape == original.shape
    np.testing.assert_array_equal(swapped[:, 320:], original[:, 320:])  # the other person: untouched
    assert np.abs(swapped[:, :320].astype(float) - original[:, :320]).mean() > 0.2


def test_video_job_shows_progress_completes_and_plays(page, inputs):
    driver, _ = page
    driver.find_element("id", "select-all").click()
    driver.find_element("id", "target").send_keys(str(inputs / "clip.mp4"))
    _wait(driver, lambda d: "face(s) found" in d.find_element("id", "status").text, what="face detection")
    driver.find_element("id", "swap").click()
    video = driver.find_element("id", "result-video")
    _wait(driver, lambda d: video.is_displayed(), what="the video result")
    assert "with the original's sound" in driver.find_element("id", "status").text
    played = driver.execute_async_script(
        """const video = arguments[0], done = arguments[arguments.length - 1];
        video.muted = true;
        video.play().then(() => setTimeout(() => done({t: video.currentTime, d: video.duration,
            w: video.videoWidth, h: video.videoHeight, error: video.error && video.error.code}), 500),
          (e) => done({error: String(e)}));""",
        video,
    )
    assert played.get("error") is None, played
    assert played["t"] > 0 and (played["w"], played["h"]) == (240, 180), played
    assert abs(played["d"] - 10 / 12) < 0.15, played
    _screenshot(driver, "serve_video.png")


def test_anonymise_without_a_source(page, inputs, tmp_path):
    driver, _ = page
    driver.refresh()
    shutil.copy(inputs / "pair.png", tmp_path / "pair.png")
    driver.find_element("id", "target").send_keys(str(tmp_path / "pair.png"))
    _wait(driver, lambda d: "2 face(s) found" in d.find_element("id", "status").text, what="face detection")
    driver.find_element("id", "anonymize").click()
    driver.find_element("id", "swap").click()
    result = driver.find_element("id", "result-image")
    _wait(driver, lambda d: result.is_displayed() and d.execute_script("return arguments[0].naturalWidth", result))
    swapped, _ = decode_image(_result_pixels(driver, "result-image"))
    original, _ = decode_image((inputs / "pair.png").read_bytes())
    assert np.abs(swapped[:, :320].astype(float) - original[:, :320]).mean() > 0.2
    assert np.abs(swapped[:, 320:].astype(float) - original[:, 320:]).mean() > 0.05  # every face


def _swap_image_at_strength(driver, strength: str):
    driver.execute_script(
        "const s = document.getElementById('strength'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input', {bubbles: true}));",
        strength,
    )
    assert driver.find_element("id", "strength-value").text == f"{float(strength):.2f}"
    driver.find_element("id", "swap").click()
    result = driver.find_element("id", "result-image")
    _wait(
        driver,
        lambda d: (
            d.find_element("id", "status").text == "done"
            and d.execute_script("return arguments[0].naturalWidth", result)
        ),
        what=f"the swap at strength {strength}",
    )
    return decode_image(_result_pixels(driver, "result-image"))[0]


def test_identity_strength_slider_changes_what_the_generator_gets(page, inputs):
    """Strength 0 feeds G each face's own embedding, 1 the source's: the swapped faces differ."""
    driver, _ = page
    driver.refresh()
    driver.find_element("id", "target").send_keys(str(inputs / "pair.png"))
    driver.find_element("id", "source").send_keys(str(inputs / "source.jpg"))
    _wait(driver, lambda d: "2 face(s) found" in d.find_element("id", "status").text, what="face detection")
    driver.find_element("id", "select-all").click()
    own, source = _swap_image_at_strength(driver, "0"), _swap_image_at_strength(driver, "1")
    original, _ = decode_image((inputs / "pair.png").read_bytes())
    assert own.shape == source.shape == original.shape
    assert np.abs(own.astype(float) - original).mean() > 0.05  # strength 0 still runs G on every face
    assert np.abs(own.astype(float) - source).mean() > 0.05


def test_video_job_progress_bar_and_cancel(page, photos, tmp_path):
    driver, _ = page
    driver.refresh()
    write_video(tmp_path / "long.mp4", moving_face_frames(photos / "biden.jpg", count=150, size=(320, 240)))
    driver.find_element("id", "select-all").click()
    driver.find_element("id", "target").send_keys(str(tmp_path / "long.mp4"))
    driver.find_element("id", "source").send_keys(str(photos / "obama2.jpg"))
    _wait(driver, lambda d: "face(s) found" in d.find_element("id", "status").text, what="face detection")
    driver.find_element("id", "swap").click()
    _wait(
        driver,
        lambda d: d.find_element("id", "progress").is_displayed() and "running" in d.find_element("id", "status").text,
        what="the running job's progress bar",
    )
    cancel = driver.find_element("id", "cancel")
    assert cancel.is_displayed()
    cancel.click()
    _wait(driver, lambda d: "cancelled" in d.find_element("id", "status").text, what="the cancelled job")
    assert not driver.find_element("id", "result-video").is_displayed()
    assert not driver.find_element("id", "download").is_displayed()
