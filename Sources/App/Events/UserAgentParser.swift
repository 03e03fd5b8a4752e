/// What a user agent string says about the client.
public struct UserAgentInfo: Sendable, Equatable {
    /// Browser family (Chrome, Safari, Firefox, Edge, Opera, Samsung Internet, Internet Explorer), the bot's name, or nil.
    public var browser: String?
    /// Operating system (Windows, macOS, iOS, Android, Chrome OS, Linux), or nil when unknown.
    public var os: String?
    /// desktop, mobile, tablet or bot.
    public var deviceType: String
    /// A crawler, monitor, preview fetcher, headless browser or HTTP library rather than a person.
    public var isBot: Bool

    public init(browser: String?, os: String?, deviceType: String, isBot: Bool) {
        self.browser = browser
        self.os = os
        self.deviceType = deviceType
        self.isBot = isBot
    }
}

/// Parses user agent strings into browser, OS, device type and a bot flag, by ordered substring rules.
///
/// Order matters because browsers claim to be each other: Edge and Opera say "Chrome", Chrome says "Safari",
/// everything says "Mozilla".
public enum UserAgentParser {
    /// Substrings (lowercased) that mark automated clients, with the name reported as their browser.
    static let botMarkers: [(marker: String, name: String)] = [
        ("googlebot", "Googlebot"), ("bingbot", "Bingbot"), ("yandex", "YandexBot"), ("baiduspider", "Baiduspider"),
        ("duckduckbot", "DuckDuckBot"), ("applebot", "Applebot"), ("slurp", "Yahoo Slurp"), ("facebookexternalhit", "Facebook"),
        ("twitterbot", "Twitterbot"), ("linkedinbot", "LinkedInBot"), ("slackbot", "Slackbot"), ("discordbot", "Discordbot"),
        ("telegrambot", "TelegramBot"), ("whatsapp", "WhatsApp"), ("gptbot", "GPTBot"), ("chatgpt-user", "ChatGPT"),
        ("claudebot", "ClaudeBot"), ("ccbot", "CCBot"), ("bytespider", "Bytespider"), ("ahrefsbot", "AhrefsBot"),
        ("semrushbot", "SemrushBot"), ("mj12bot", "MJ12bot"), ("petalbot", "PetalBot"), ("headlesschrome", "HeadlessChrome"),
        ("phantomjs", "PhantomJS"), ("lighthouse", "Lighthouse"), ("pingdom", "Pingdom"), ("uptimerobot", "UptimeRobot"),
        ("curl/", "curl"), ("wget/", "Wget"), ("python-requests", "python-requests"), ("python-urllib", "Python urllib"),
        ("aiohttp", "aiohttp"), ("httpx", "httpx"), ("go-http-client", "Go http client"), ("okhttp", "OkHttp"),
        ("java/", "Java"), ("apache-httpclient", "Apache HttpClient"), ("axios/", "axios"), ("node-fetch", "node-fetch"),
        ("libwww-perl", "libwww-perl"), ("scrapy", "Scrapy"), ("postmanruntime", "Postman"), ("insomnia", "Insomnia"),
        // Generic words last, so named bots keep their names.
        ("crawler", "Crawler"), ("spider", "Spider"), ("crawling", "Crawler"), ("bot/", "Bot"), ("bot;", "Bot"), ("bot ", "Bot"),
        ("-bot", "Bot"), ("monitor", "Monitor"),
    ]

    /// Parsed user agents: real traffic repeats a few thousand strings.
    static let cache = BoundedCache<String, UserAgentInfo>(capacity: 10_000)

    /// Parses a user agent; nil or empty gives an unknown desktop client that is not flagged as a bot.
    public static func parse(_ userAgent: String?) -> UserAgentInfo {
        guard let userAgent, !userAgent.isEmpty else {
            return UserAgentInfo(browser: nil, os: nil, deviceType: "desktop", isBot: false)
        }
        return cache.value(for: userAgent) { parseUncached(userAgent) }
    }

    static func parseUncached(_ userAgent: String) -> UserAgentInfo {
        let lower = userAgent.lowercased()
        let os = operatingSystem(lower)
        if let bot = botMarkers.first(where: { lower.contains($0.marker) }) {
            return UserAgentInfo(browser: bot.name, os: os, deviceType: "bot", isBot: true)
        }
        return UserAgentInfo(browser: browser(lower), os: os, deviceType: deviceType(lower), isBot: false)
    }

    static func browser(_ ua: String) -> String? {
        if ua.contains("edg/") || ua.contains("edge/") || ua.contains("edga/") || ua.contains("edgios/") { return "Edge" }
        if ua.contains("opr/") || ua.contains("opera") { return "Opera" }
        if ua.contains("samsungbrowser/") { return "Samsung Internet" }
        if ua.contains("firefox/") || ua.contains("fxios/") { return "Firefox" }
        if ua.contains("crios/") || ua.contains("chrome/") || ua.contains("chromium/") { return "Chrome" }
        if ua.contains("msie ") || ua.contains("trident/") { return "Internet Explorer" }
        if ua.contains("safari/") || (ua.contains("applewebkit/") && (ua.contains("iphone") || ua.contains("ipad"))) { return "Safari" }
        return nil
    }

    static func operatingSystem(_ ua: String) -> String? {
        if ua.contains("windows") { return "Windows" }
        if ua.contains("iphone") || ua.contains("ipad") || ua.contains("ipod") { return "iOS" }
        if ua.contains("android") { return "Android" }
        if ua.contains("cros ") { return "Chrome OS" }
        if ua.contains("mac os x") || ua.contains("macintosh") { return "macOS" }
        if ua.contains("linux") || ua.contains("x11") { return "Linux" }
        return nil
    }

    static func deviceType(_ ua: String) -> String {
        if ua.contains("ipad") || ua.contains("tablet") || (ua.contains("android") && !ua.contains("mobile")) { return "tablet" }
        if ua.contains("mobi") || ua.contains("iphone") || ua.contains("ipod") || ua.contains("android") { return "mobile" }
        return "desktop"
    }
}
