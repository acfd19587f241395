//! The testbed: real kube-apiservers (etcd + kube-apiserver + kube-controller-manager per
//! cluster) and moto, for the end-to-end tests and the demo.
