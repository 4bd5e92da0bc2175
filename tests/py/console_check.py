#!/usr/bin/env python3
"""Drives the agent's web console in headless Chromium over WebDriver
(Debian's chromium and chromium-driver, the selenium client).

Usage: console_check.py <login url> <screenshot dir> <gateway key> <device key>

Steps, each printed as it passes; any failure exits non-zero with the
reason. After the first checks it prints "ready" and waits for one line on
stdin (the test has published a new reading), then checks that the value
and the plot updated without a reload.
"""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 20


def step(text):
    print(text, flush=True)


def main():
    url, shots, gateway, device = sys.argv[1:5]
    os.makedirs(shots, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1100,900",
        "--disable-dev-shm-usage",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, WAIT)
    try:
        driver.get(url)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status-key"), gateway))
        step("overview: the gateway's key")
        driver.save_screenshot(os.path.join(shots, "console-overview.png"))

        driver.find_element(By.CSS_SELECTOR, 'nav a[data-page="devices"]').click()
        value_sel = f'.point-value[data-id="{device}/power"]'
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, value_sel)))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'.plot[data-series="{device}/power"] canvas')))
        points = driver.execute_script(f'return plots.get("{device}/power").xs.length')
        assert points >= 2, f"the plot has {points} points"
        mark = driver.find_element(By.CSS_SELECTOR, f'.device[data-key="{device}"] .verified').text
        assert "verified" in mark, mark
        step(f"devices: plot with {points} points, verified mark")
        driver.save_screenshot(os.path.join(shots, "console-devices.png"))

        for page in ["following", "members"]:
            driver.find_element(By.CSS_SELECTOR, f'nav a[data-page="{page}"]').click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{page} h2")))
        step("following and members load")
        driver.find_element(By.CSS_SELECTOR, 'nav a[data-page="devices"]').click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'.plot[data-series="{device}/power"] canvas')))

        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, f"console errors: {severe}"
        step("no console errors")

        print("ready", flush=True)
        sys.stdin.readline()
        WebDriverWait(driver, WAIT).until(
            lambda d: "77.5" in d.find_element(By.CSS_SELECTOR, value_sel).text
        )
        after = driver.execute_script(f'return plots.get("{device}/power").xs.length')
        assert after > points, f"the plot did not grow: {points} -> {after}"
        step(f"live: the value became 77.5 and the plot has {after} points, no reload")
        driver.save_screenshot(os.path.join(shots, "console-live.png"))

        driver.find_element(By.CSS_SELECTOR, 'nav a[data-page="any"]').click()
        driver.find_element(By.ID, "any-key").send_keys(device)
        driver.find_element(By.CSS_SELECTOR, "#any-form button").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#any-readings .verified")))
        step("any device: read and verified by key")
        driver.save_screenshot(os.path.join(shots, "console-any-device.png"))

        driver.find_element(By.CSS_SELECTOR, 'nav a[data-page="write"]').click()
        driver.find_element(By.ID, "write-key").send_keys(device)
        driver.find_element(By.ID, "write-point").send_keys("relay")
        driver.find_element(By.ID, "write-value").send_keys("true")
        driver.find_element(By.CSS_SELECTOR, "#write-form button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "write-why")))
        why = driver.find_element(By.ID, "write-why").text
        err = driver.find_element(By.ID, "write-error").text
        assert "writers" in why, why
        step(f"write refused and explained: {err}")
        driver.save_screenshot(os.path.join(shots, "console-write-refused.png"))
        # The refused write's own 4xx is the only error the browser may log.
        severe = [
            e for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "/api/v1/write/" not in e["message"]
        ]
        assert not severe, f"console errors: {severe}"
        print(json.dumps({"ok": True, "points_before": points, "points_after": after}), flush=True)
    except Exception as e:
        driver.save_screenshot(os.path.join(shots, "console-failure.png"))
        page = driver.execute_script(
            "return (document.querySelector('#error')||{}).textContent + ' | ' + "
            "document.querySelector('main').innerText.slice(0, 600)"
        )
        raise RuntimeError(f"{type(e).__name__} {e} (page: {page!r})") from e
    finally:
        driver.quit()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure as the test's reason
        print(f"FAILED: {e}", flush=True)
        sys.exit(1)
