import Foundation

/// Where a visit came from: the referrer's kind and domain.
public struct TrafficSource: Sendable, Equatable {
    /// direct, search, social, email, referral or internal.
    public var source: String
    /// The referrer's host without `www.`, or nil for direct traffic.
    public var domain: String?

    public init(source: String, domain: String?) {
        self.source = source
        self.domain = domain
    }
}

/// Classifies referrers into direct, search, social, email and referral traffic.
public enum ReferrerClassifier {
    static let searchEngines = [
        "google.", "bing.com", "yahoo.", "duckduckgo.com", "baidu.com", "yandex.", "ecosia.org", "startpage.com", "search.brave.com",
        "qwant.com", "naver.com", "seznam.cz", "ask.com", "aol.com",
    ]
    static let socialNetworks = [
        "facebook.com", "fb.com", "fb.me", "instagram.com", "twitter.com", "t.co", "x.com", "linkedin.com", "lnkd.in", "reddit.com",
        "youtube.com", "youtu.be", "tiktok.com", "pinterest.", "news.ycombinator.com", "mastodon.", "threads.net", "bsky.app",
        "vk.com", "weibo.com", "whatsapp.com", "telegram.org", "t.me", "discord.com", "quora.com", "medium.com",
    ]
    static let emailProviders = [
        "mail.google.com", "outlook.live.com", "outlook.office.com", "mail.yahoo.", "mail.proton.me", "mail.aol.com", "webmail.",
        "mail.",
    ]

    struct ClassificationKey: Hashable, Sendable {
        var referrer: String
        /// The host of the page's URL.
        var siteHost: String?
    }

    /// Referrers repeat: each is classified once (the domain lists are searched with Foundation's string search,
    /// which showed in ingest profiles).
    static let classificationCache = BoundedCache<ClassificationKey, TrafficSource>(capacity: 10_000)

    /// Classifies `referrer` (a URL, or a bare host). A referrer on `site` (the page's own host) is internal.
    public static func classify(_ referrer: String?, site: String? = nil) -> TrafficSource {
        guard let referrer = referrer?.trimmingSpaces, !referrer.isEmpty else {
            return TrafficSource(source: "direct", domain: nil)
        }
        let siteHost = site.flatMap(host(of:))
        return classificationCache.value(for: ClassificationKey(referrer: referrer, siteHost: siteHost)) {
            classifyUncached(referrer, siteHost: siteHost)
        }
    }

    static func classifyUncached(_ referrer: String, siteHost: String?) -> TrafficSource {
        guard let host = host(of: referrer) else { return TrafficSource(source: "referral", domain: nil) }
        let domain = host.hasPrefix("www.") ? String(host.dropFirst(4)) : host
        if let site = siteHost {
            let siteDomain = site.hasPrefix("www.") ? String(site.dropFirst(4)) : site
            if domain == siteDomain { return TrafficSource(source: "internal", domain: domain) }
        }
        if referrer.lowercased().hasPrefix("android-app://com.google.android.gm") || emailProviders.contains(where: { matches(domain, $0) }) {
            return TrafficSource(source: "email", domain: domain)
        }
        if searchEngines.contains(where: { matches(domain, $0) }) { return TrafficSource(source: "search", domain: domain) }
        if socialNetworks.contains(where: { matches(domain, $0) }) { return TrafficSource(source: "social", domain: domain) }
        return TrafficSource(source: "referral", domain: domain)
    }

    static let hostCache = BoundedCache<String, String?>(capacity: 10_000)

    /// The lowercased host of a URL or bare host name.
    static func host(of text: String) -> String? {
        hostCache.value(for: text) { parseHost(text) }
    }

    static func parseHost(_ text: String) -> String? {
        let withScheme = text.contains("://") ? text : "https://" + text
        guard let host = URLComponents(string: withScheme)?.host?.lowercased(), !host.isEmpty else { return nil }
        return host
    }

    /// Whether `domain` is `pattern` or a subdomain of it; a pattern ending in `.` matches any suffix (`google.` → google.de).
    static func matches(_ domain: String, _ pattern: String) -> Bool {
        if pattern.hasSuffix(".") {
            return domain.hasPrefix(pattern) || domain.contains("." + pattern)
        }
        return domain == pattern || domain.hasSuffix("." + pattern)
    }
}
