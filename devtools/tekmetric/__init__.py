"""The Tekmetric partner API emulator and the warehouse-versus-emulator comparison."""
