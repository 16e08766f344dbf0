"""What the simulated news site and its audience look like: the tables behind the simulation.

Categories and their share of the catalog, devices and user agents in plausible proportions,
countries with their time zones, where readers come from, when in their day they read, and
what automated clients announce themselves as. Nothing here draws random numbers.
"""

from __future__ import annotations

import re

from clickstream.events import DeviceType

SITE = "https://news.example.com"

#: Categories and their share of the catalog.
CATEGORIES = {
    "politics": 16, "world": 14, "business": 12, "tech": 12, "sports": 12,
    "entertainment": 10, "science": 8, "health": 8, "travel": 4, "culture": 4,
}  # fmt: skip

#: Share of sessions per device: mobile-heavy, as news traffic is.
DEVICES = {DeviceType.MOBILE: 60, DeviceType.DESKTOP: 32, DeviceType.TABLET: 8}

USER_AGENTS = {
    DeviceType.MOBILE: (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 "
        "(KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Android 14; Mobile; rv:132.0) Gecko/132.0 Firefox/132.0",
    ),
    DeviceType.DESKTOP: (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    DeviceType.TABLET: (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.6778.81 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; Lenovo TB-X606F) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/130.0.6723.102 Safari/537.36",
    ),
}

#: Automated clients: crawlers, scrapers and headless browsers. They run on desktop-class
#: machines in data centres and say what they are in their user agent.
BOT_USER_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
    "python-requests/2.32.3",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "curl/8.5.0",
)
#: How an analyst recognises automated traffic by its user agent.
BOT_PATTERN = re.compile(r"bot|crawl|spider|headless|python-requests|scrapy|curl/", re.IGNORECASE)

#: Countries, their share of readers and their UTC offsets in minutes (a reader gets one).
COUNTRIES: dict[str, tuple[int, tuple[int, ...]]] = {
    "US": (30, (-300, -300, -360, -420, -480)), "GB": (9, (0,)), "IN": (9, (330,)),
    "DE": (7, (60,)), "CA": (5, (-300, -300, -360, -480)), "FR": (5, (60,)),
    "BR": (5, (-180,)), "AU": (4, (600, 600, 480)), "JP": (3, (540,)), "NL": (3, (60,)),
    "ES": (3, (60,)), "IT": (3, (60,)), "MX": (3, (-360,)), "SE": (2, (60,)), "PL": (2, (60,)),
    "NG": (2, (60,)), "ZA": (2, (120,)), "FI": (1, (120,)), "IE": (1, (0,)),
}  # fmt: skip
#: Where automated traffic comes from.
BOT_COUNTRIES = {"US": 50, "DE": 12, "NL": 12, "IE": 8, "SG": 8, "FR": 5, "GB": 5}

#: Where a reader comes from when not from our own pages (None: typed or bookmarked).
EXTERNAL_REFERRERS: dict[str | None, int] = {
    "https://www.google.com/": 38, None: 25, "https://www.facebook.com/": 11,
    "https://news.google.com/": 6, "https://t.co/": 6, "https://www.reddit.com/": 5,
    "https://www.bing.com/": 4, "https://duckduckgo.com/": 3, "https://news.ycombinator.com/": 2,
}  # fmt: skip

#: First octets of public IPv4 blocks; home addresses are drawn inside them.
HOME_IP_FIRST_OCTETS = (23, 31, 37, 45, 51, 62, 66, 73, 77, 81, 86, 91, 98, 104, 109, 121,
                        138, 151, 176, 185, 188, 203, 212, 217)  # fmt: skip
#: First octets of cloud and hosting blocks, where bots run.
DATACENTER_IP_FIRST_OCTETS = (3, 13, 18, 34, 35, 52, 54, 104, 138, 159, 167, 178)

#: How busy readers are at each local hour (0-23), relative to the busiest hour: quiet at
#: night, a morning peak, a steady day and the evening high.
ACTIVITY_BY_LOCAL_HOUR = (
    0.22, 0.13, 0.08, 0.06, 0.06, 0.10, 0.25, 0.55, 0.80, 0.85, 0.80, 0.80,
    0.85, 0.80, 0.75, 0.75, 0.78, 0.82, 0.88, 0.96, 1.00, 0.92, 0.70, 0.42,
)  # fmt: skip

HEADLINE_SUBJECTS = {
    "politics": ("Senate", "Lawmakers", "The governor", "Voters", "Opposition leaders"),
    "world": ("UN envoys", "Border talks", "Aid agencies", "Foreign ministers"),
    "business": ("Central bank", "Retail giant", "Start-up founders", "Markets"),
    "tech": ("Chipmakers", "New smartphone", "AI lab", "Open-source project"),
    "sports": ("Champions", "Rookie striker", "Coach", "Underdogs"),
    "entertainment": ("Box office", "Pop star", "Streaming series", "Festival jury"),
    "science": ("Researchers", "Space agency", "Physicists", "New study"),
    "health": ("Doctors", "Health officials", "Clinical trial", "Nutritionists"),
    "travel": ("Airlines", "Island resort", "Rail operators", "City guide"),
    "culture": ("Museum", "Novelist", "Theatre company", "Art fair"),
}
HEADLINE_VERBS = ("unveil", "back", "question", "rethink", "embrace", "reject", "bet on", "weigh")


def is_bot(user_agent: str) -> bool:
    """Whether a user agent announces an automated client."""
    return BOT_PATTERN.search(user_agent) is not None
