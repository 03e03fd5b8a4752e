import Foundation

/// The schema migrations that ship with the server: numbered SQL files applied in order.
public enum BundledMigrations {
    /// The folder holding the `NNNN_name.sql` files.
    public static var directory: URL? { Bundle.module.resourceURL?.appendingPathComponent("sql") }
}
