//! PCI binding (vfio-pci, uio_pci_generic), MMIO and DMA memory: the audited unsafe core.
