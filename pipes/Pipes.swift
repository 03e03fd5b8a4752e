import Foundation

/// The pipe templates that ship with the server: `pipes/<template>/<name>.sql` (see README, "Pipes"). A new
/// template folder is also listed in Package.swift's resources of this target.
public enum BundledPipes {
    /// The folder holding one subfolder per template.
    public static var directory: URL? { Bundle.module.resourceURL }
}
