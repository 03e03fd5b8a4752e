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

    /// Points of `width` features each, one after another in one buffer, `nan` for a missing value. (An array per
    /// point took five to eight times the memory: `assign_clusters` clusters 494,000 users at ten million events.)
    struct Points: Sendable, Equatable {
        var width: Int
        var count: Int
        var values: [Double]

        init(width: Int, count: Int, values: [Double]) {
            precondition(values.count == width * count, "width values per point")
            (self.width, self.count, self.values) = (width, count, values)
        }

        /// Point `index`'s features.
        func point(_ index: Int) -> [Double] { Array(values[index * width..<(index + 1) * width]) }

        /// The squared Euclidean distance from point `index` to `centre`.
        func distanceSquared(_ index: Int, _ centre: [Double]) -> Double {
            var sum = 0.0
            let base = index * width
            for feature in 0..<width {
                let difference = values[base + feature] - centre[feature]
                sum += difference * difference
            }
            return sum
        }

        /// The nearest of `centres` to point `index` (the lowest-numbered on ties).
        func nearest(_ index: Int, _ centres: [[Double]]) -> (index: Int, distanceSquared: Double) {
            var best = (index: 0, distanceSquared: Double.infinity)
            for (centreIndex, centre) in centres.enumerated() {
                let distance = distanceSquared(index, centre)
                if distance < best.distanceSquared { best = (centreIndex, distance) }
            }
            return best
        }
    }

    var k: Int
    var maxIterations: Int
    var seed: UInt64 = 0x5EED_2024

    /// Clusters `points`. Fewer distinct points than `k` give fewer clusters.
    func cluster(_ points: Points) -> Result {
        let data = Self.standardised(points)
        guard data.count > 0, k > 0 else { return Result(assignments: [], centres: [], iterations: 0) }
        var centres = seeds(data)
        var owner = [Int](repeating: -1, count: data.count)
        var iterations = 0
        while iterations < maxIterations {
            iterations += 1
            var changed = false
            for index in 0..<data.count {
                let nearest = data.nearest(index, centres).index
                if nearest != owner[index] {
                    owner[index] = nearest
                    changed = true
                }
            }
            guard changed else { break }
            var sums = [[Double]](repeating: [Double](repeating: 0, count: data.width), count: centres.count)
            var counts = [Int](repeating: 0, count: centres.count)
            for index in 0..<data.count {
                counts[owner[index]] += 1
                for feature in 0..<data.width { sums[owner[index]][feature] += data.values[index * data.width + feature] }
            }
            for centre in centres.indices where counts[centre] > 0 {
                centres[centre] = sums[centre].map { $0 / Double(counts[centre]) }
            }
        }
        // A last assignment to the final centres (when the loop stopped on maxIterations they have moved since).
        for index in 0..<data.count { owner[index] = data.nearest(index, centres).index }

        var sizes = [Int](repeating: 0, count: centres.count)
        for index in owner { sizes[index] += 1 }
        let order = centres.indices.sorted { lhs, rhs in
            if sizes[lhs] != sizes[rhs] { return sizes[lhs] > sizes[rhs] }
            if centres[lhs] != centres[rhs] { return centres[lhs].lexicographicallyPrecedes(centres[rhs]) }
            return lhs < rhs
        }
        var number = [Int](repeating: 0, count: centres.count)
        for (position, centre) in order.enumerated() { number[centre] = position + 1 }
        let assignments = (0..<data.count).map { index in
            Assignment(cluster: number[owner[index]], distance: data.distanceSquared(index, centres[owner[index]]).squareRoot())
        }
        return Result(assignments: assignments, centres: order.map { centres[$0] }, iterations: iterations)
    }

    /// k-means++ seeding with the fixed-seed generator.
    func seeds(_ data: Points) -> [[Double]] {
        var generator = SplitMix64(seed: seed)
        var centres = [data.point(generator.next(below: data.count))]
        var nearest = (0..<data.count).map { data.distanceSquared($0, centres[0]) }
        while centres.count < k {
            let total = nearest.reduce(0, +)
            // Every point sits on a centre: no more distinct points to take.
            guard total > 0 else { break }
            var target = generator.nextDouble() * total
            var chosen = data.count - 1
            for index in nearest.indices where nearest[index] > 0 {
                if target < nearest[index] {
                    chosen = index
                    break
                }
                target -= nearest[index]
            }
            if nearest[chosen] == 0, let last = nearest.lastIndex(where: { $0 > 0 }) { chosen = last }
            let centre = data.point(chosen)
            centres.append(centre)
            for index in nearest.indices { nearest[index] = min(nearest[index], data.distanceSquared(index, centre)) }
        }
        return centres
    }

    /// Z-scores per feature; a missing value is the mean (0), and a constant feature is 0 everywhere.
    static func standardised(_ points: Points) -> Points {
        let (width, count) = (points.width, points.count)
        var means = [Double](repeating: 0, count: width)
        var deviations = [Double](repeating: 1, count: width)
        for feature in 0..<width {
            var (sum, present) = (0.0, 0)
            for index in 0..<count where !points.values[index * width + feature].isNaN {
                sum += points.values[index * width + feature]
                present += 1
            }
            guard present > 0 else { continue }
            let mean = sum / Double(present)
            var squares = 0.0
            for index in 0..<count where !points.values[index * width + feature].isNaN {
                let value = points.values[index * width + feature]
                squares += (value - mean) * (value - mean)
            }
            let variance = squares / Double(present)
            means[feature] = mean
            deviations[feature] = variance > 0 ? variance.squareRoot() : 1
        }
        var values = points.values
        for index in values.indices {
            let feature = index % max(width, 1)
            values[index] = values[index].isNaN ? 0 : (values[index] - means[feature]) / deviations[feature]
        }
        return Points(width: width, count: count, values: values)
    }
}
