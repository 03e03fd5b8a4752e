import App
import Testing

let userAgentTable: [(String, UserAgentInfo)] = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        UserAgentInfo(browser: "Chrome", os: "Windows", deviceType: "desktop", isBot: false)
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
        UserAgentInfo(browser: "Edge", os: "Windows", deviceType: "desktop", isBot: false)
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        UserAgentInfo(browser: "Safari", os: "macOS", deviceType: "desktop", isBot: false)
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        UserAgentInfo(browser: "Safari", os: "iOS", deviceType: "mobile", isBot: false)
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
        UserAgentInfo(browser: "Chrome", os: "iOS", deviceType: "tablet", isBot: false)
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
        UserAgentInfo(browser: "Chrome", os: "Android", deviceType: "mobile", isBot: false)
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Safari/537.36",
        UserAgentInfo(browser: "Samsung Internet", os: "Android", deviceType: "tablet", isBot: false)
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        UserAgentInfo(browser: "Firefox", os: "Linux", deviceType: "desktop", isBot: false)
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
        UserAgentInfo(browser: "Opera", os: "Windows", deviceType: "desktop", isBot: false)
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        UserAgentInfo(browser: "Chrome", os: "Chrome OS", deviceType: "desktop", isBot: false)
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        UserAgentInfo(browser: nil, os: "Windows", deviceType: "desktop", isBot: false)
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        UserAgentInfo(browser: "Googlebot", os: nil, deviceType: "bot", isBot: true)
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        UserAgentInfo(browser: "Bingbot", os: nil, deviceType: "bot", isBot: true)
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
        UserAgentInfo(browser: "HeadlessChrome", os: "Linux", deviceType: "bot", isBot: true)
    ),
    ("curl/8.5.0", UserAgentInfo(browser: "curl", os: nil, deviceType: "bot", isBot: true)),
    ("python-requests/2.31.0", UserAgentInfo(browser: "python-requests", os: nil, deviceType: "bot", isBot: true)),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        UserAgentInfo(browser: "Facebook", os: nil, deviceType: "bot", isBot: true)
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        UserAgentInfo(browser: "GPTBot", os: nil, deviceType: "bot", isBot: true)
    ),
]

let referrerTable: [(String?, String?, TrafficSource)] = [
    (nil, nil, TrafficSource(source: "direct", domain: nil)),
    ("", nil, TrafficSource(source: "direct", domain: nil)),
    ("https://google.com", nil, TrafficSource(source: "search", domain: "google.com")),
    ("https://www.google.co.uk/search?q=x", nil, TrafficSource(source: "search", domain: "google.co.uk")),
    ("https://duckduckgo.com/", nil, TrafficSource(source: "search", domain: "duckduckgo.com")),
    ("https://www.bing.com/search?q=analytics", nil, TrafficSource(source: "search", domain: "bing.com")),
    ("https://t.co/abc", nil, TrafficSource(source: "social", domain: "t.co")),
    ("https://m.facebook.com/story", nil, TrafficSource(source: "social", domain: "m.facebook.com")),
    ("https://news.ycombinator.com/item?id=1", nil, TrafficSource(source: "social", domain: "news.ycombinator.com")),
    ("https://mail.google.com/mail/u/0/", nil, TrafficSource(source: "email", domain: "mail.google.com")),
    ("https://outlook.live.com/", nil, TrafficSource(source: "email", domain: "outlook.live.com")),
    ("https://blog.example.org/post", nil, TrafficSource(source: "referral", domain: "blog.example.org")),
    ("https://app.example.com/home", "https://app.example.com/dashboard", TrafficSource(source: "internal", domain: "app.example.com")),
    ("https://www.example.com/a", "https://example.com/b", TrafficSource(source: "internal", domain: "example.com")),
    ("google.com", nil, TrafficSource(source: "search", domain: "google.com")),
    ("https://notgoogle.company.com/", nil, TrafficSource(source: "referral", domain: "notgoogle.company.com")),
]

@Suite("Enrichment: user agents, referrers, IP privacy")
struct EnrichmentTests {
    @Test("user agents parse into browser, OS, device type and bot flag", arguments: userAgentTable)
    func userAgents(_ userAgent: String, _ expected: UserAgentInfo) {
        #expect(UserAgentParser.parse(userAgent) == expected)
    }

    @Test("a missing user agent is not a bot")
    func missingUserAgent() {
        #expect(UserAgentParser.parse(nil) == UserAgentInfo(browser: nil, os: nil, deviceType: "desktop", isBot: false))
        #expect(!UserAgentParser.parse("").isBot)
    }

    @Test("referrers classify into direct, search, social, email, referral and internal", arguments: referrerTable)
    func referrers(_ referrer: String?, _ site: String?, _ expected: TrafficSource) {
        #expect(ReferrerClassifier.classify(referrer, site: site) == expected)
    }

    @Test("IP addresses are truncated by default, kept or dropped by setting")
    func ipPrivacy() {
        let truncating = EventNormalizer()
        #expect(truncating.storedIP("203.0.113.57") == "203.0.113.0")
        #expect(truncating.storedIP("2001:db8:85a3:8d3:1319:8a2e:370:7348") == "2001:db8:85a3::")
        #expect(truncating.storedIP("::ffff:203.0.113.57") == "ffff::")  // IPv4-mapped: its first three groups
        #expect(truncating.storedIP("203.0.113") == nil)  // not an address: not stored
        #expect(truncating.storedIP("203..0.113.57") == "203.0.113.0")  // empty parts are skipped
        #expect(truncating.storedIP("2001:db8::1") == "2001:db8::")
        #expect(EventNormalizer(ipStorage: .full).storedIP("203.0.113.57") == "203.0.113.57")
        #expect(EventNormalizer(ipStorage: .none).storedIP("203.0.113.57") == nil)
    }
}
