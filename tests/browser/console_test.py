"""The operator console in headless Chromium (run by tests/browser/run.sh).

Each check polls the page with a deadline (the console refreshes its live parts every 2 s);
none sleeps to synchronise. Screenshots are saved to $SCREENSHOTS at each stage.
"""
import os
import re
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CONSOLE = os.environ.get("CONSOLE", "http://127.0.0.1:56080")
SHOTS = os.environ.get("SCREENSHOTS", "tests/browser/screenshots")
DEADLINE = 90  # seconds, for anything the stack does on its own (credit, retries, check-back)
HAPPY_PATH = ["ACCEPTED", "HALF_MESSAGE", "LOCAL_COMMITTED", "ANSWERED", "CREDITED"]


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def shot(d, name):
    path = os.path.join(SHOTS, name + ".png")
    d.save_screenshot(path)
    print(f"  screenshot {path}")


def until(what, probe, deadline=DEADLINE):
    """Polls probe() until it returns something truthy; fails with `what` at the deadline."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            last = probe()
            if last:
                return last
        except (StaleElementReferenceException, WebDriverException) as e:  # a live part was swapped
            last = e
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def send(d, amount):
    """Sends a transfer through the form; returns (tx_no, Idempotency-Key shown)."""
    d.get(CONSOLE + "/")
    form = d.find_element(By.ID, "transfer-form")
    key = form.find_element(By.NAME, "idempotency_key").get_attribute("value")
    assert re.fullmatch(r"[0-9a-f-]{36}", key), f"the form shows an Idempotency-Key: {key!r}"
    box = form.find_element(By.NAME, "amount")
    box.clear()
    box.send_keys(amount)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    note = until("the transfer's answer", lambda: d.find_element(By.ID, "note").text)
    assert key in note, f"the answer names the Idempotency-Key used: {note}"
    # "transfer of … with Idempotency-Key <key>: <tx_no> <status>": the tx_no is the last id.
    ids = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", note)
    assert len(ids) == 2 and ("COMMITTED" in note or "UNKNOWN" in note), f"bank1 took it: {note}"
    print(f"  sent {amount}: {note}")
    return ids[-1], key


def row(d, tx):
    return d.find_element(By.CSS_SELECTOR, f'#transfer-list tr[data-tx="{tx}"]')


def steps(d):
    return [li.get_attribute("data-step") for li in d.find_elements(By.CSS_SELECTOR, "#timeline li")]


def set_fault(d, bank, fault, threshold):
    d.get(CONSOLE + "/operations")
    tr = d.find_element(By.CSS_SELECTOR, f'table.faults[data-bank="{bank}"] tr[data-fault="{fault}"]')
    box = tr.find_element(By.NAME, "threshold")
    box.clear()
    if threshold:
        box.send_keys(threshold)
    tr.find_element(By.CSS_SELECTOR, f'button[value="{"on" if threshold else "off"}"]').click()
    note = until(f"{bank} {fault} switched", lambda: d.find_element(By.ID, "note").text)
    want = f"on at ≥ {threshold}" if threshold else "off"
    assert want in note, f"{bank} {fault}: {note}"
    print(f"  {note}")


def total(d):
    d.get(CONSOLE + "/")
    return d.find_element(By.ID, "total").text, d.find_element(By.ID, "in-flight").text


def main():
    os.makedirs(SHOTS, exist_ok=True)
    d = browser()
    try:
        print("console loads, money adds up")
        d.get(CONSOLE + "/")
        assert "bank-transfer console" in d.title, d.title
        assert total(d) == ("1000.00", "0.00"), total(d)
        shot(d, "01-overview-empty")

        print("a transfer through the form is credited, and its timeline has every happy-path step")
        tx, _ = send(d, "12.34")
        until("the transfer credited in the list", lambda: row(d, tx).get_attribute("data-outcome") == "CREDITED")
        shot(d, "02-overview-credited")
        row(d, tx).find_element(By.CSS_SELECTOR, "a").click()
        until(f"the happy path on {tx}'s timeline", lambda: all(s in steps(d) for s in HAPPY_PATH))
        assert steps(d).index("CREDITED") > steps(d).index("LOCAL_COMMITTED"), steps(d)
        shot(d, "03-timeline-happy-path")

        print("bank1 answers UNKNOWN: the broker's check-back commits it")
        set_fault(d, "bank1", "unknown_at_least", "88.00")
        tx, _ = send(d, "88.00")
        d.get(f"{CONSOLE}/transfers/{tx}")
        until("a check-back, then the credit", lambda: "CHECK_BACK" in steps(d) and "CREDITED" in steps(d))
        answered = d.find_element(By.CSS_SELECTOR, '#timeline li[data-step="ANSWERED"]').text
        assert "UNKNOWN" in answered, answered
        check = d.find_element(By.CSS_SELECTOR, '#timeline li[data-step="CHECK_BACK"]').text
        assert "COMMIT" in check, check
        shot(d, "04-timeline-check-back")
        set_fault(d, "bank1", "unknown_at_least", "")

        print("bank2's consume fault: the attempts appear on the timeline")
        set_fault(d, "bank2", "consume_fail_at_least", "50.00")
        shot(d, "05-operations-fault-on")
        tx, _ = send(d, "77.00")
        d.get(f"{CONSOLE}/transfers/{tx}")
        until("two failed deliveries", lambda: steps(d).count("DELIVERY_FAILED") >= 2)
        first = d.find_elements(By.CSS_SELECTOR, '#timeline li[data-step="DELIVERY_FAILED"]')[0].text
        assert "reconsume_times 0" in first and "retry at delay level 3" in first, first
        shot(d, "06-timeline-retries")
        set_fault(d, "bank2", "consume_fail_at_least", "")
        d.get(f"{CONSOLE}/transfers/{tx}")
        until("the retried transfer credited", lambda: "CREDITED" in steps(d))
        shot(d, "07-timeline-retried-then-credited")

        print("everything settled: money conserved")
        until("nothing in flight", lambda: total(d) == ("1000.00", "0.00"))
        shot(d, "08-overview-settled")
        d.get(CONSOLE + "/operations")
        d.find_element(By.ID, "dlq")
        shot(d, "09-operations")
        print("console: all checks passed")
    except AssertionError:
        shot(d, "failed")
        with open(os.path.join(SHOTS, "failed.html"), "w") as f:
            f.write(d.page_source)
        raise
    finally:
        d.quit()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
