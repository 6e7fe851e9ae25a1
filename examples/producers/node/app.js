// A demonstration of pino with the logrelay transport, also run by the integration test.
'use strict'

const path = require('node:path')
const pino = require('pino')

const transport = pino.transport({
  target: path.join(__dirname, 'amqp-transport.js'),
  options: {
    url: process.env.LOGRELAY_AMQP_URL,
    exchange: process.env.LOGRELAY_EXCHANGE || 'logs',
    routingKey: `${process.env.LOGRELAY_PROJECT || 'shop'}.api`
  }
})
const logger = pino({ name: 'shop.api' }, transport)

logger.info({ user: 17 }, 'request served')
logger.warn('slow request')
logger.error(new Error('payment failed'), 'payment failed')

// Waits for the transport to publish everything and receive the broker's confirms.
transport.on('close', () => process.exit(0))
transport.end()
