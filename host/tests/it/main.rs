//! Integration tests of the host: the real `.so` files through the real loader, the real
//! RabbitMQ on 127.0.0.1:5672 (each test its own queue), the real binary.

mod cli;
mod common;
mod dispatch;
mod hostile;
mod intake;
mod loading;
mod producers;
mod shapes;
