/// k-means clustering of points with a few numeric features, deterministic for a given input.
///
/// Features are standardised first (z-scores over the points; a missing value counts as the feature's mean, and a
/// feature that does not vary counts as 0), so that seconds and counts weigh alike. Seeding is k-means++ with a
/// fixed-seed generator (`SplitMix64`, whose sequence depends only on its seed): the first centre is a point drawn
/// uniformly, each next one a point drawn with probability proportional to its squared distance to the nearest centre
/// chosen. Lloyd iterations follow: every point goes to its nearest centre (the lowest-numbered on ties), every
/// centre to the mean of its points (a centre left without points stays where it was), until no point changes
/// cluster or `maxIterations` is reached. Clusters are then numbered 1…k by size, largest first (ties by the
/// centres' coordinates). The same points in the same order give the same clusters.
struct KMeans: Sendable {
    /// What became of each point, in input order.
    struct Assignment: Equatable, Sendable {
        /// 1…k, largest cluster first.
        var cluster: Int
        /// Euclidean distance to the cluster's centre, in standard deviations.
        var distance: Double
    }

    struct Result: Sendable {
        var assignments: [Assignment]
        /// The centres in standardised units, indexed by cluster − 1.
        var centres: [[Double]]
        /// Lloyd iterations run.
        var iterations: Int
    }

    var k: Int
    var maxIterations: Int
    var seed: UInt64 = 0x5EED_2024

    /// Clusters `points` (each the same number of features, `nil` for a missing value). Fewer distinct points
    /// than `k` give fewer clusters.
    func cluster(_ points: [[Double?]]) -> Result {
        let data = Self.standardised(points)
        guard !data.isEmpty, k > 0 else { return Result(assignments: [], centres: [], iterations: 0) }
        var centres = seeds(data)
        var owner = [Int](repeating: -1, count: data.count)
        var iterations = 0
        while iterations < maxIterations {
            iterations += 1
            var changed = false
            for index in data.indices {
                let nearest = Self.nearest(data[index], centres).index
                if nearest != owner[index] {
                    owner[index] = nearest
                    changed = true
                }
            }
            guard changed else { break }
            var sums = [[Double]](repeating: [Double](repeating: 0, count: data[0].count), count: centres.count)
            var counts = [Int](repeating: 0, count: centres.count)
            for index in data.indices {
                counts[owner[index]] += 1
                for feature in data[index].indices { sums[owner[index]][feature] += data[index][feature] }
            }
            for centre in centres.indices where counts[centre] > 0 {
                centres[centre] = sums[centre].map { $0 / Double(counts[centre]) }
            }
        }
        // A last assignment to the final centres (when the loop stopped on maxIterations they have moved since).
        for index in data.indices { owner[index] = Self.nearest(data[index], centres).index }

        var sizes = [Int](repeating: 0, count: centres.count)
        for index in owner { sizes[index] += 1 }
        let order = centres.indices.sorted { lhs, rhs in
            if sizes[lhs] != sizes[rhs] { return sizes[lhs] > sizes[rhs] }
            if centres[lhs] != centres[rhs] { return centres[lhs].lexicographicallyPrecedes(centres[rhs]) }
            return lhs < rhs
        }
        var number = [Int](repeating: 0, count: centres.count)
        for (position, centre) in order.enumerated() { number[centre] = position + 1 }
        let assignments = data.indices.map { index in
            Assignment(cluster: number[owner[index]], distance: Self.distanceSquared(data[index], centres[owner[index]]).squareRoot())
        }
        return Result(assignments: assignments, centres: order.map { centres[$0] }, iterations: iterations)
    }

    /// k-means++ seeding with the fixed-seed generator.
    func seeds(_ data: [[Double]]) -> [[Double]] {
        var generator = SplitMix64(seed: seed)
        var centres = [data[generator.next(below: data.count)]]
        var nearest = data.map { Self.distanceSquared($0, centres[0]) }
        while centres.count < k {
            let total = nearest.reduce(0, +)
            // Every point sits on a centre: no more distinct points to take.
            guard total > 0 else { break }
            var target = generator.nextDouble() * total
            var chosen = data.count - 1
            for index in data.indices where nearest[index] > 0 {
                if target < nearest[index] {
                    chosen = index
                    break
                }
                target -= nearest[index]
            }
            if nearest[chosen] == 0, let last = nearest.lastIndex(where: { $0 > 0 }) { chosen = last }
            centres.append(data[chosen])
            for index in data.indices { nearest[index] = min(nearest[index], Self.distanceSquared(data[index], data[chosen])) }
        }
        return centres
    }

    /// Z-scores per feature; a missing value is the mean (0), and a constant feature is 0 everywhere.
    static func standardised(_ points: [[Double?]]) -> [[Double]] {
        guard let width = points.first?.count else { return [] }
        var means = [Double](repeating: 0, count: width)
        var deviations = [Double](repeating: 1, count: width)
        for feature in 0..<width {
            let values = points.compactMap { $0[feature] }
            guard !values.isEmpty else { continue }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
            means[feature] = mean
            deviations[feature] = variance > 0 ? variance.squareRoot() : 1
        }
        return points.map { point in (0..<width).map { feature in point[feature].map { ($0 - means[feature]) / deviations[feature] } ?? 0 } }
    }

    static func nearest(_ point: [Double], _ centres: [[Double]]) -> (index: Int, distanceSquared: Double) {
        var best = (index: 0, distanceSquared: Double.infinity)
        for (index, centre) in centres.enumerated() {
            let distance = distanceSquared(point, centre)
            if distance < best.distanceSquared { best = (index, distance) }
        }
        return best
    }

    static func distanceSquared(_ lhs: [Double], _ rhs: [Double]) -> Double {
        var sum = 0.0
        for index in lhs.indices {
            let difference = lhs[index] - rhs[index]
            sum += difference * difference
        }
        return sum
    }
}
