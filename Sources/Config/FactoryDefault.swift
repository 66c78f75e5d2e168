// The configuration a new or reset appliance boots with. It is compiled into the binary so
// that a box with an empty or damaged data partition still comes up manageable.
public enum FactoryDefault {
    /// The login of the factory default: admin / bloophone (change it at first login).
    public static let text = """
        set system hostname bloo
        set system user admin class admin
        set system user admin password-hash pbkdf2-sha256$200000$6f1c2b9e4a7d3f5008c1e2d3b4a59687$1d71c3c61b0548c189bdaa229c159aef8fd89422fd54c49f41e72bda6213d5db
        set system service-user bloo
        set system logging level info
        set interfaces eth0 mtu 1500
        set tunnel tls 0.0.0.0:443 certificate /data/tls/certificate.pem
        set tunnel tls 0.0.0.0:443 key /data/tls/key.pem
        set relay ports 20000-29999

        """

    /// The factory default, parsed and validated (a test proves this cannot fail).
    public static var configuration: Configuration {
        // A broken built-in default is a build defect caught by ConfigTests, not a runtime case.
        try! Configuration(text: text)
    }
}
